"""`guide-ray fid-stats REAL_DIR -o STATS`: FID statistics of a folder of real images.

The statistics (mean, covariance, count) are written with the extractor that produced them, so a
job that names them in `fid.real_stats` computes ΔFID_real with that same extractor. A second
call for the same images and extractor finds the file up to date and does nothing; a file for
other images or another extractor is never overwritten.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=__doc__.splitlines()[0])
    p.add_argument("real_dir", type=Path, metavar="REAL_DIR", help="folder of real images (searched recursively)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="STATS", help="statistics file to write (.npz)")
    p.add_argument("--extractor", default="pytorch-fid", choices=["pytorch-fid", "clean-fid"],
                   help="Inception port: pytorch-fid (GUIDE's, default) or clean-fid")
    p.add_argument("--weights", help="weights directory (default $GUIDE_RAY_WEIGHTS or ./weights)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-size", type=int, default=50)
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from guide_ray.errors import ConfigError
    from guide_ray.metrics.stats import saved_key
    from guide_ray.models import weights as weight_registry

    if args.output.suffix != ".npz":
        raise ConfigError(f"-o {args.output}: the statistics file must end in .npz")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    folder = args.real_dir.resolve()
    weights_dir = weight_registry.resolve_weights_dir(args.weights)
    file = weight_registry.FID_EXTRACTOR_FILES[args.extractor]
    weight_registry.resolve_file(file.name, weights_dir)                    # missing / wrong hash: fail now

    from guide_ray.metrics.fid import folder_key, image_files, real_image_stats
    from guide_ray.models.nets.factory import build_fid_extractor
    from guide_ray.utils.device import pick_device

    files = image_files(folder)
    key = folder_key(folder, files, weight_registry.FID_EXTRACTOR_NAMES[args.extractor])
    existing = saved_key(args.output)
    if existing == key:
        print(f"{args.output} is up to date ({len(files)} images, {key['extractor']})")
        return 0
    if existing is not None:
        raise ConfigError(f"{args.output} holds statistics of other images or another extractor "
                          f"({existing.get('n')} images, {existing.get('extractor')}); choose another -o")
    extractor = build_fid_extractor("eg3d-ffhq512-128", weights_dir, pick_device(args.device), args.extractor)
    stats = real_image_stats(files, extractor, args.batch_size)
    stats.save(args.output, key)
    print(f"wrote {args.output}: {stats.n} images, {stats.mu.shape[0]}-d {stats.extractor} features")
    return 0
