"""`guide-ray weights [DIR]`: every pretrained file, found / missing / wrong hash, and who needs it;
`guide-ray weights convert X.pkl -o Y.pt` turns an official EG3D pickle into our weights-only format.

Exit status 0 only when the named backend can run with what DIR holds (every file it needs for
--metrics and --scenarios present, none with a wrong hash), else 1, so scripts can rely on it."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub, name: str, help_text: str) -> None:
    from guide_ray.config.backends import BACKEND_NAMES

    p = sub.add_parser(name, help=help_text, description=__doc__)
    p.add_argument("dir", nargs="?", help="weights directory (default --weights, $GUIDE_RAY_WEIGHTS or ./weights)")
    p.add_argument("--weights", help="weights directory (same as DIR)")
    p.add_argument("--backend", default="eg3d-ffhq512-128",
                   help="backend whose files must all be there for exit status 0, listed after the table with where "
                   f"to get each: {', '.join(BACKEND_NAMES)} (default: eg3d-ffhq512-128)")
    p.add_argument("--metrics", default="ID,ID_others,FID_pre,delta_FID_real",
                   help="comma-separated metrics the runs will compute (default: all four)")
    p.add_argument("--scenarios", default="random,ffhq,celebahq,world_in_domain,world_ood,custom",
                   help="comma-separated scenarios the runs will use (default: all)")
    p.add_argument("--convert", type=Path, metavar="PKL", help="convert an official EG3D .pkl (never executed)")
    p.add_argument("-o", "--output", type=Path, help="output path for --convert")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from guide_ray.errors import ConfigError
    from guide_ray.models import weights as weight_registry

    if args.convert is not None:
        if args.output is None:
            raise ConfigError("--convert needs -o/--output")
        from guide_ray.models.eg3d.checkpoint import convert_pickle
        print(f"wrote {convert_pickle(args.convert, args.output)}")
        return 0
    needed = weight_registry.needed_files(args.backend, metrics=_names(args.metrics), scenarios=_names(args.scenarios))
    statuses = weight_registry.check_weights(weight_registry.resolve_weights_dir(args.dir or args.weights))
    print(weight_registry.format_weights_report(statuses))
    if needed:
        print(f"\nfiles backend {args.backend} needs, and where to get each:")
        print("\n".join(f"  {f.name}: {f.url}" for f in needed))
    else:
        print(f"\nbackend {args.backend} needs no file (embedded stand-in networks)")
    blocking = [s for s in statuses if s.status in ("missing", "wrong-hash")
                and (s.file in needed or s.status == "wrong-hash")]
    if blocking:
        listing = ", ".join(f"{s.file.name} ({s.status})" for s in blocking)
        print(f"\nbackend {args.backend} cannot run: {listing}")
        return 1
    print(f"\nbackend {args.backend} can run ({len(needed)} file(s) needed, all present)")
    return 0


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
