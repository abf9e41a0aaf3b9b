"""The weights directory: where every pretrained file lives, and the registry that describes them.

Nothing is ever downloaded at run time. Users put the published files, under their published
names, in one folder, resolved as `--weights DIR` > $GUIDE_RAY_WEIGHTS > ./weights. This module
knows each file (what it is, where it is published, its sha256 where one can be justified, who
needs it), checks a folder (`guide-ray weights [DIR]`) and fails fast, naming every missing file
at once, before `guide-ray run` starts any Ray work. docs/weights.md is the human version.

Pure stdlib (no torch, no ray): safe to import from the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from guide_ray.config.backends import BACKEND_NAMES, backend_info
from guide_ray.config.metrics import METRIC_NAMES, metric
from guide_ray.errors import ConfigError, WeightsInvalid, WeightsMissing
from guide_ray.utils.files import file_sha256
from guide_ray.utils.text import did_you_mean

ENV_VAR = "GUIDE_RAY_WEIGHTS"
DEFAULT_DIR = "weights"

BACKENDS: tuple[str, ...] = BACKEND_NAMES          # guide_ray.config.backends
SCENARIOS: tuple[str, ...] = ("random", "ffhq", "celebahq", "world_in_domain", "world_ood", "custom")  # manifest scenarios; all but random invert a photo
IdMetricKind = Literal["curricularface", "insightface", "irse50"]
FidExtractorKind = Literal["pytorch-fid", "clean-fid"]
Status = Literal["ok", "found", "missing", "wrong-hash"]

GUIDE_DRIVE = "https://drive.google.com/drive/folders/1tl7zLPZgwOpa6xWmRsjz7LMrysfSbh_8"
NOT_PUBLISHED = "not published"


@dataclass(frozen=True)
class WeightFile:
    """One published file, under the exact name it must have in the weights directory."""

    name: str
    what: str
    url: str                  # where it is published (a page or a direct link)
    sha256: str | None        # full digest; None when no source publishes one
    hash_source: str          # why that digest can be trusted, or NOT_PUBLISHED
    needed_by: str            # backends / commands / metrics, for humans
    optional: bool = False    # never required by any command
    sha256_prefix: str | None = None  # published hash prefix (torch.hub file-name rule) when no full digest is

    @property
    def published_hash(self) -> str | None:
        """The full digest, else the prefix: what a file must match."""
        return self.sha256 or self.sha256_prefix

    @property
    def how_to_get(self) -> str:
        return f"get {self.name} from {self.url} and put it in the weights directory (docs/weights.md)"


EG3D_PKL = WeightFile(
    "ffhqrebalanced512-128.pkl",
    "EG3D generator, rebalanced FFHQ 512x512, neural rendering 128 (the network GUIDE unlearns); "
    "a network pickle, read without executing its embedded code",
    "https://api.ngc.nvidia.com/v2/models/nvidia/research/eg3d/versions/1/files/ffhqrebalanced512-128.pkl "
    "(NGC catalog nvidia/research/eg3d; also in GUIDE's Google Drive folder)",
    None, NOT_PUBLISHED, "eg3d-ffhq512-128: unlearn, run, every metric",
)
W_AVG = WeightFile(
    "w_avg_ffhqrebalanced512-128.pt",
    "GUIDE's mean latent w_avg [1, 14, 512]; equals G.backbone.mapping.w_avg, which is used instead",
    GUIDE_DRIVE, None, NOT_PUBLISHED, "nothing (optional cross-check)", optional=True,
)
IR_SE50 = WeightFile(
    "model_ir_se50.pth",
    "IR-SE50 ArcFace (pSp / TreB1eN) for GUIDE's identity loss",
    "https://drive.google.com/file/d/1KW7bjndL3QG3sxBbZxreGHigcCCpsDgn/view (pixel2style2pixel README; "
    "also GUIDE's Google Drive folder)",
    None, NOT_PUBLISHED, "eg3d-ffhq512-128, stylegan2-ffhq1024: unlearn, run (ID loss); metrics ID, ID_others "
    "with ID network irse50",
)
CURRICULARFACE = WeightFile(
    "CurricularFace_Backbone.pth",
    "CurricularFace IR-101 for GUIDE's ID / ID_others metric",
    "https://drive.google.com/file/d/1f4IwVa2-Bn9vWLwB-bUwm53U_MlvinAj/view (pixel2style2pixel README; "
    "HuangYG123/CurricularFace; GUIDE's Google Drive folder)",
    None, NOT_PUBLISHED, "eg3d-ffhq512-128, stylegan2-ffhq1024: metrics ID, ID_others (default ID network)",
)
GOAE_ENCODER = WeightFile(
    "encoder_FFHQ.pt",
    "GOAE encoder (Swin-V2 + mapping) that inverts a photo into W+ for the InD / OOD scenarios",
    "https://drive.google.com/drive/folders/12pTX5TKQcA8ElNW5jDkWURSPUyISggHs (GOAE README; "
    "also GUIDE's Google Drive folder)",
    None, NOT_PUBLISHED, "eg3d-ffhq512-128: scenarios ffhq, celebahq, custom (photo inversion)",
)
VGG16 = WeightFile(
    "vgg16-397923af.pth",
    "torchvision ImageNet VGG16, the trunk of LPIPS-VGG (GUIDE's perceptual loss)",
    "https://download.pytorch.org/models/vgg16-397923af.pth",
    "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
    "torchvision publishes the prefix 397923af in the file name (torch.hub's hash-prefix rule); "
    "the full digest is the one pinned independently by several public projects",
    "eg3d-ffhq512-128, stylegan2-ffhq1024: unlearn, run (LPIPS loss)",
)
INCEPTION = WeightFile(
    "inception-2015-12-05.pt",
    "TorchScript (code + weights) port of TF Inception-v3 used by clean-fid / StyleGAN2-ADA for FID",
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
    "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4",
    "pinned for this URL by crowsonkb/k-diffusion (k_diffusion/evaluation.py) and other public projects; "
    "NVIDIA publishes none",
    "eg3d-ffhq512-128: FID metrics with fid.extractor clean-fid; guide-ray fid-stats --extractor clean-fid",
)
PT_INCEPTION = WeightFile(
    "pt_inception-2015-12-05-6726825d.pth",
    "pytorch-fid's port of TF Inception-v3 (FID weights, a plain state_dict), the extractor of GUIDE's "
    "evaluate_fid.py and of ffhq_real_feat.npy",
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    None, "pytorch-fid publishes the sha256 prefix 6726825d in the file name (torch.hub's hash-prefix rule)",
    "eg3d-ffhq512-128, stylegan2-ffhq1024: metrics FID_pre, delta_FID_real (default extractor); "
    "guide-ray fid-stats",
    sha256_prefix="6726825d",
)
FFHQ_FEATS = WeightFile(
    "ffhq_real_feat.npy",
    "GUIDE's Inception features of real FFHQ images, an N x 2048 matrix (pytorch-fid extractor)",
    GUIDE_DRIVE, None, NOT_PUBLISHED,
    "eg3d-ffhq512-128, stylegan2-ffhq1024: metric delta_FID_real (unless fid.real_stats names a guide-ray "
    "fid-stats file)",
)
INSIGHTFACE_ARCFACE = WeightFile(
    "w600k_r50.onnx",
    "insightface ArcFace R50 (WebFace600K) from the buffalo_l pack; non-commercial licence",
    "https://github.com/deepinsight/insightface/releases/download/model-zoo/buffalo_l.zip (unzip, keep w600k_r50.onnx)",
    None, NOT_PUBLISHED, "eg3d-ffhq512-128: metrics ID, ID_others with ID network insightface", optional=True,
)
PSP_FFHQ_ENCODE = WeightFile(
    "psp_ffhq_encode.pt",
    "pSp FFHQ inversion checkpoint: GradualStyleEncoder (IR-SE50) + rosinality StyleGAN2 1024x1024 decoder "
    "+ latent_avg [18, 512], the generator and encoder of GUIDE-SG2 (paper appendix A.7); read weights-only",
    "https://drive.google.com/file/d/1bMTNWkh5LArlaWSc_wa8VKyq2V42T2z0/view (pixel2style2pixel README, "
    "Pretrained Models: \"StyleGAN Inversion\")",
    None, NOT_PUBLISHED, "stylegan2-ffhq1024: unlearn, run (generator and photo inversion)",
)

WEIGHT_FILES: tuple[WeightFile, ...] = (
    EG3D_PKL, W_AVG, IR_SE50, CURRICULARFACE, GOAE_ENCODER, VGG16, PT_INCEPTION, INCEPTION, FFHQ_FEATS,
    INSIGHTFACE_ARCFACE, PSP_FFHQ_ENCODE,
)
FILES: dict[str, WeightFile] = {f.name: f for f in WEIGHT_FILES}

_ID_METRIC_FILES: dict[str, WeightFile] = {
    "curricularface": CURRICULARFACE, "insightface": INSIGHTFACE_ARCFACE, "irse50": IR_SE50,
}
FID_EXTRACTOR_FILES: dict[str, WeightFile] = {"pytorch-fid": PT_INCEPTION, "clean-fid": INCEPTION}
# The name each extractor records with its statistics (FidStats.extractor), by job-level kind.
FID_EXTRACTOR_NAMES: dict[str, str] = {"pytorch-fid": "pytorch-fid-inception-v3",
                                       "clean-fid": "clean-fid-inception-v3"}
GUIDE_REAL_FEATURES_EXTRACTOR = "pytorch-fid"   # the extractor that produced ffhq_real_feat.npy
PHOTO_SCENARIOS: tuple[str, ...] = ("ffhq", "celebahq", "world_in_domain", "world_ood", "custom")   # identities inverted from a photo


@dataclass(frozen=True)
class WeightStatus:
    """What `check_weights` found for one registry entry."""

    file: WeightFile
    path: Path
    status: Status            # ok: hash matches; found: present, no published hash; missing; wrong-hash
    sha256: str | None = None  # the file's digest, when it was computed
    size: int | None = None


def resolve_weights_dir(cli_value: str | Path | None = None) -> Path:
    """`--weights DIR` if given, else $GUIDE_RAY_WEIGHTS, else ./weights; absolute, need not exist."""
    chosen = cli_value if cli_value not in (None, "") else os.environ.get(ENV_VAR) or DEFAULT_DIR
    return Path(chosen).expanduser().resolve()


def check_file(file: WeightFile, weights_dir: Path) -> WeightStatus:
    """Status of one file; hashes only files with a published digest."""
    path = Path(weights_dir) / file.name
    if not path.is_file():
        return WeightStatus(file, path, "missing")
    size = path.stat().st_size
    if file.published_hash is None:
        return WeightStatus(file, path, "found", size=size)
    digest = file_sha256(path)
    return WeightStatus(file, path, "ok" if digest.startswith(file.published_hash) else "wrong-hash", digest, size)


def check_weights(weights_dir: Path | str, *, files: Sequence[WeightFile] = WEIGHT_FILES) -> list[WeightStatus]:
    """One status per registry entry, in registry order (what `guide-ray weights` prints)."""
    return [check_file(f, Path(weights_dir)) for f in files]


def needed_files(
    backend: str, *, metrics: Iterable[str] = (), scenarios: Iterable[str] = (),
    id_metric: IdMetricKind = "curricularface", fid_extractors: Iterable[str] = (GUIDE_REAL_FEATURES_EXTRACTOR,),
    guide_real_features: bool = True, inversion: str | None = None,
) -> list[WeightFile]:
    """Files a run of `backend` reads: generator + loss nets (guide_ray.config.backends), the files
    of the `inversion` method (default: the backend's) if a scenario inverts photos, and what the
    requested metrics need (guide_ray.config.metrics): the ID network, the files of
    `fid_extractors`, and GUIDE's real features unless the job brings its own statistics
    (`guide_real_features=False`). Embedded backends (the stand-ins tiny and stylegan2-tiny, and the
    synthetic `world` shipped in the package) need none."""
    _check_choice("backend", backend, BACKENDS)
    info = backend_info(backend)
    inversion = inversion or info.default_inversion
    _check_choice(f"inversion method of {backend}", inversion, tuple(info.inverters))
    scenarios, extractors = list(scenarios), list(fid_extractors)
    for scenario in scenarios:
        _check_choice("scenario", scenario, SCENARIOS)
    needs = set()
    for name in metrics:
        _check_choice("metric", name, METRIC_NAMES)
        needs |= metric(name).needs
    _check_choice("id metric", id_metric, tuple(_ID_METRIC_FILES))
    for kind in extractors:
        _check_choice("FID extractor", kind, tuple(FID_EXTRACTOR_FILES))
    if info.embedded:
        return []
    wanted = [FILES[name] for name in (*info.generator_files, *info.loss_files)]
    if any(s in PHOTO_SCENARIOS for s in scenarios):
        wanted.extend(FILES[name] for name in info.inverters[inversion])
    if "id_network" in needs:
        wanted.append(_ID_METRIC_FILES[id_metric])
    if "fid_extractor" in needs:
        wanted.extend(FID_EXTRACTOR_FILES[kind] for kind in extractors)
    if "real_stats" in needs and guide_real_features:
        wanted.append(FFHQ_FEATS)
    return list(dict.fromkeys(wanted))                     # de-duplicated, order kept


def require_backend_files(
    backend: str, weights_dir: Path | str, *, metrics: Iterable[str] = (), scenarios: Iterable[str] = (),
    id_metric: IdMetricKind = "curricularface", fid_extractors: Iterable[str] = (GUIDE_REAL_FEATURES_EXTRACTOR,),
    guide_real_features: bool = True, inversion: str | None = None,
) -> dict[str, Path]:
    """Paths of every file the run needs, by file name; fail before any work starts.

    Raises WeightsMissing naming every missing file at once (with where to get each), then
    WeightsInvalid naming every file whose sha256 differs from the published one.
    """
    weights_dir = Path(weights_dir)
    statuses = [check_file(f, weights_dir) for f in needed_files(
        backend, metrics=metrics, scenarios=scenarios, id_metric=id_metric, fid_extractors=fid_extractors,
        guide_real_features=guide_real_features, inversion=inversion)]
    missing = [s for s in statuses if s.status == "missing"]
    if missing:
        listing = "; ".join(f"{s.file.name} from {s.file.url}" for s in missing)
        raise WeightsMissing(
            weights_dir,
            f"{len(missing)} file(s) needed by backend {backend!r} are not there: {listing} "
            f"(set --weights DIR or ${ENV_VAR}; see docs/weights.md)",
        )
    bad = [s for s in statuses if s.status == "wrong-hash"]
    if bad:
        raise WeightsInvalid("; ".join(_wrong_hash_message(s) for s in bad))
    return {s.file.name: s.path for s in statuses}


def resolve_file(name: str, weights_dir: Path | str) -> Path:
    """Path of one registry file, checked: WeightsMissing if absent, WeightsInvalid on a bad hash."""
    if name not in FILES:
        raise ConfigError(f"unknown weights file {name!r}{did_you_mean(name, FILES)}")
    status = check_file(FILES[name], Path(weights_dir))
    if status.status == "missing":
        raise WeightsMissing(status.path, status.file.how_to_get)
    if status.status == "wrong-hash":
        raise WeightsInvalid(_wrong_hash_message(status))
    return status.path


def format_weights_report(statuses: Sequence[WeightStatus]) -> str:
    """Plain-text table: file, status, needed by; one row per status, then the folder checked."""
    rows = [("file", "status", "needed by")]
    for s in statuses:
        label = {"ok": "ok (sha256 verified)", "found": "found (no published hash)",
                 "missing": "MISSING", "wrong-hash": "WRONG SHA256"}[s.status]
        if s.status == "missing" and s.file.optional:
            label = "missing (optional)"
        if s.status == "ok" and s.file.sha256 is None:
            label = "ok (sha256 prefix verified)"
        rows.append((s.file.name, label, s.file.needed_by))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in rows]
    lines.insert(1, f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * 9}")
    if statuses:
        lines.append(f"\nweights directory: {statuses[0].path.parent}")
    return "\n".join(lines)


def _wrong_hash_message(status: WeightStatus) -> str:
    return (f"{status.path}: sha256 {status.sha256} differs from the published {status.file.published_hash} "
            f"({status.file.hash_source}); re-download it from {status.file.url}")


def _check_choice(kind: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {kind} {value!r}{did_you_mean(value, choices)}; choose from {', '.join(choices)}")
