"""`guide-ray manifest random|folder|world`: create a Parquet manifest of identities.

`random --n N --seed S` makes ids random-0000… with per-row seeds derived from S;
`folder DIR` makes one identity per sub-folder (sorted images: first = source, rest = other images);
`world --domain in_domain|ood --n N --photos K` renders K photos of N synthetic-world identities
into `<manifest folder>/photos/` and lists them (scenarios world_in_domain / world_ood).
`--variants A B` repeats every identity once per variant (ids `<id>.<variant>`, one seed).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help_text, description=__doc__.splitlines()[0])
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    rand = kinds.add_parser("random", help="identities sampled from seeds (scenario 'random')")
    rand.add_argument("--n", type=int, required=True, help="number of identities")
    rand.add_argument("--seed", type=int, default=0, help="manifest seed (per-row seeds are derived)")
    rand.add_argument("-o", "--output", type=Path, required=True, help="manifest to write (.parquet)")
    rand.add_argument("--variants", nargs="+", default=[], metavar="VARIANT",
                      help="every identity once per variant (e.g. baseline guide): the rows of the paper's tables")
    folder = kinds.add_parser("folder", help="one identity per sub-folder of photos")
    folder.add_argument("root", type=Path, help="folder with one sub-folder per person")
    folder.add_argument("--scenario", default="custom", choices=["ffhq", "celebahq", "custom"])
    folder.add_argument("--seed", type=int, default=0, help="manifest seed (per-row seeds are derived)")
    folder.add_argument("-o", "--output", type=Path, required=True, help="manifest to write (.parquet)")
    folder.add_argument("--variants", nargs="+", default=[], metavar="VARIANT",
                        help="every identity once per variant (e.g. baseline guide): the rows of the paper's tables")
    world = kinds.add_parser("world", help="photos of synthetic-world identities, rendered (backend 'world')")
    world.add_argument("--domain", default="in_domain", choices=["in_domain", "ood"],
                       help="the training population, or the shifted out-of-domain one")
    world.add_argument("--n", type=int, required=True, help="number of identities")
    world.add_argument("--photos", type=int, default=3, help="photos per identity: the source + K-1 for ID_others")
    world.add_argument("--seed", type=int, default=0, help="seed of the identities, photos and per-row seeds")
    world.add_argument("-o", "--output", type=Path, required=True,
                       help="manifest to write (.parquet); photos go to photos/ beside it")
    world.add_argument("--variants", nargs="+", default=[], metavar="VARIANT",
                       help="every identity once per variant (e.g. baseline guide): the rows of the paper's tables")
    parser.set_defaults(handler=main)
    return parser


def main(args: argparse.Namespace) -> int:
    from guide_ray.config.manifest import folder_rows, random_rows, with_variants, write_manifest
    from guide_ray.errors import ConfigError

    if args.seed < 0:
        raise ConfigError(f"--seed must be non-negative, got {args.seed}")
    if args.kind == "random":
        rows = random_rows(args.n, args.seed)
    elif args.kind == "world":
        from guide_ray.world.photos import write_photo_folders
        root = args.output.resolve().parent / "photos" / args.domain
        write_photo_folders(root, args.domain, args.n, args.photos, args.seed)
        rows = folder_rows(root, args.output.resolve().parent, f"world_{args.domain}", args.seed)
    else:
        rows = folder_rows(args.root, args.output.resolve().parent, args.scenario, args.seed)
    rows = with_variants(rows, args.variants)
    path = write_manifest(rows, args.output)
    print(f"wrote {len(rows)} identities to {path}")
    return 0
