"""`guide-ray weights [DIR]`: every pretrained file, found / missing / wrong hash, and who needs it;
`guide-ray weights convert X.pkl -o Y.pt` turns an official EG3D pickle into our weights-only format."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=__doc__)
    p.add_argument("dir", nargs="?", help="weights directory (default --weights, $GUIDE_RAY_WEIGHTS or ./weights)")
    p.add_argument("--weights", help="weights directory (same as DIR)")
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
    statuses = weight_registry.check_weights(weight_registry.resolve_weights_dir(args.dir or args.weights))
    print(weight_registry.format_weights_report(statuses))
    return 1 if any(s.status == "wrong-hash" for s in statuses) else 0
