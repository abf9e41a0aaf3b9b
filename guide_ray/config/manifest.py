"""The manifest: one Parquet row per identity to unlearn, validated at the edge.

Whole-file problems (unreadable file, missing or mistyped column, unknown column) raise
`ConfigError`: nothing can run. Row problems (bad id, scenario, seed, missing image, duplicate id)
become `ManifestRowError`s naming the 0-based row number (pandas' default index) and the reason;
the good rows still run and the engine records the bad ones in RUN/manifest_errors.json.

Columns: identity_id, scenario, seed (required); source, other_images, variant (optional); and
per-row GuideConfig overrides as columns named `guide.<dotted key>` (e.g. `guide.d`,
`guide.camera.radius`), null where a row keeps the job's value. Relative image paths are
relative to the manifest's folder. No torch, no ray.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, ValidationError, model_validator

from guide_ray.config.base import StrictModel, describe_validation_error
from guide_ray.errors import ConfigError, ManifestRowError
from guide_ray.utils.files import atomic_file
from guide_ray.utils.seeding import derive_seed
from guide_ray.utils.text import did_you_mean

# world_in_domain / world_ood: photos rendered by the synthetic world's renderer (`guide-ray manifest world`)
Scenario = Literal["random", "ffhq", "celebahq", "world_in_domain", "world_ood", "custom"]
SCENARIOS: tuple[str, ...] = get_args(Scenario)
IDENTITY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # it becomes a file name
OVERRIDE_PREFIX = "guide."
REQUIRED_COLUMNS = ("identity_id", "scenario", "seed")
OPTIONAL_COLUMNS = ("source", "other_images", "variant")

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("identity_id", pa.string(), nullable=False),
        pa.field("scenario", pa.string(), nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("other_images", pa.list_(pa.string())),
        pa.field("variant", pa.string()),
    ]
)


class ManifestRow(StrictModel):
    """One identity as written in the manifest (paths as written, not yet resolved)."""

    identity_id: str = Field(pattern=IDENTITY_ID_PATTERN, description="unique; letters, digits, . _ -")
    scenario: Scenario
    seed: int = Field(ge=0, lt=2**63, description="random latent (random scenario) and unlearning RNG")
    source: str = Field("", description="image path or URI; empty for scenario 'random'")
    other_images: tuple[str, ...] = Field((), description="other photos of the person, for ID_others")
    variant: str | None = Field(None, description="GUIDE variant for this row; None = the job's variant")
    overrides: dict[str, bool | int | float | str] = Field(
        default_factory=dict, description="dotted GuideConfig keys from the `guide.*` columns"
    )

    @model_validator(mode="after")
    def _source_matches_scenario(self) -> ManifestRow:
        if self.scenario == "random" and (self.source or self.other_images):
            raise ValueError(
                "scenario 'random' samples its latent from the seed: source and other_images must be empty"
            )
        if self.scenario != "random" and not self.source:
            raise ValueError(f"scenario {self.scenario!r} needs a source image")
        return self


@dataclass(frozen=True)
class ManifestRead:
    """The valid rows with their row numbers, and one error per bad row."""

    path: Path
    rows: list[tuple[int, ManifestRow]] = field(default_factory=list)
    errors: list[ManifestRowError] = field(default_factory=list)


READABLE_SCHEMES = ("file",)  # the pipeline opens local (or shared-mount) files only


def is_uri(value: str) -> bool:
    """True for 's3://…', 'gs://…', 'file://…'."""
    return "://" in value


def resolve_media(value: str, base: Path) -> str:
    """A manifest path made absolute against the manifest's folder; a file:// URI becomes its path.

    Other URIs are returned unchanged; `read_manifest` has already rejected their rows.
    """
    if not value:
        return value
    if is_uri(value):
        scheme, _, rest = value.partition("://")
        return unquote(urlsplit(value).path) if scheme.lower() == "file" and rest.startswith("/") else value
    return str((base / value).resolve())


def read_manifest(path: Path) -> ManifestRead:
    """Validate every row of the Parquet manifest at `path`.

    Raises ConfigError for whole-file problems; returns row problems in `ManifestRead.errors`.
    """
    if not Path(path).is_file():
        raise ConfigError(f"manifest {path} does not exist; create one with `guide-ray manifest random` "
                          "or `guide-ray manifest folder`")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ConfigError(f"cannot read manifest {path}: {exc}") from exc
    _check_columns(path, table.schema)
    result = ManifestRead(path=path)
    first_seen: dict[str, int] = {}
    for number, record in enumerate(table.to_pylist()):
        try:
            row = _validate_record(number, record)
            _check_files(number, row, path.parent)
            if row.identity_id in first_seen:
                raise ManifestRowError(
                    number, row.identity_id, f"duplicate identity_id (first at row {first_seen[row.identity_id]})"
                )
        except ManifestRowError as err:
            result.errors.append(err)
            continue
        first_seen[row.identity_id] = number
        result.rows.append((number, row))
    return result


def _check_columns(path: Path, schema: pa.Schema) -> None:
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    for name in REQUIRED_COLUMNS:
        if name not in schema.names:
            raise ConfigError(f"manifest {path}: missing required column {name!r} (has {schema.names})")
    for fld in schema:
        if fld.name.startswith(OVERRIDE_PREFIX):
            ok = _is_scalar(fld.type)
            expected = "bool, integer, float or string"
        elif fld.name in known:
            ok, expected = _column_type_ok(fld.name, fld.type)
        else:
            raise ConfigError(
                f"manifest {path}: unknown column {fld.name!r}{did_you_mean(fld.name, known)}. Columns: {', '.join(sorted(known))}, "
                f"and '{OVERRIDE_PREFIX}<key>' for per-row GuideConfig overrides"
            )
        if not ok:
            raise ConfigError(f"manifest {path}: column {fld.name!r} has type {fld.type}, expected {expected}")


def _column_type_ok(name: str, typ: pa.DataType) -> tuple[bool, str]:
    if pa.types.is_null(typ):
        return name not in REQUIRED_COLUMNS, "a non-null column"
    if name == "seed":
        return pa.types.is_integer(typ), "an integer"
    if name == "other_images":
        if not (pa.types.is_list(typ) or pa.types.is_large_list(typ)):
            return False, "list<string>"
        return _is_text(typ.value_type) or pa.types.is_null(typ.value_type), "list<string>"
    return _is_text(typ), "string"


def _is_text(typ: pa.DataType) -> bool:
    return pa.types.is_string(typ) or pa.types.is_large_string(typ)


def _is_scalar(typ: pa.DataType) -> bool:
    return any(check(typ) for check in (pa.types.is_null, pa.types.is_boolean, pa.types.is_integer,
                                        pa.types.is_floating, pa.types.is_string, pa.types.is_large_string))


def _validate_record(number: int, record: dict[str, object]) -> ManifestRow:
    ident = record.get("identity_id")
    who = ident if isinstance(ident, str) else None
    for name in REQUIRED_COLUMNS:
        if record.get(name) is None:
            raise ManifestRowError(number, who, f"{name} is null")
    data: dict[str, object] = {k: record[k] for k in REQUIRED_COLUMNS}
    for name in OPTIONAL_COLUMNS:
        if record.get(name) is not None:
            data[name] = record[name]
    overrides = {
        k[len(OVERRIDE_PREFIX):]: v for k, v in record.items() if k.startswith(OVERRIDE_PREFIX) and v is not None
    }
    if overrides:
        data["overrides"] = overrides
    try:
        return ManifestRow.model_validate(data)
    except ValidationError as exc:
        raise ManifestRowError(number, who, describe_validation_error(exc)) from exc


def _check_files(number: int, row: ManifestRow, base: Path) -> None:
    for kind, value in [("source", row.source), *(("other image", v) for v in row.other_images)]:
        if not value:
            continue
        if is_uri(value) and resolve_media(value, base) == value:  # not a file:///absolute/path
            raise ManifestRowError(
                number, row.identity_id,
                f"{kind} {value!r} cannot be read: the pipeline opens local files only (a path, relative to the "
                "manifest or absolute, or a file:///absolute/path URI); copy the image to storage every node "
                "sees and give its path")
        if not Path(resolve_media(value, base)).is_file():
            raise ManifestRowError(number, row.identity_id, f"{kind} not found: {resolve_media(value, base)}")


def write_manifest(rows: list[ManifestRow], path: Path) -> Path:
    """Write rows as a Parquet manifest (atomically); overrides become `guide.*` columns."""
    override_keys = sorted({k for r in rows for k in r.overrides})
    schema = MANIFEST_SCHEMA
    for key in override_keys:
        values = [r.overrides[key] for r in rows if key in r.overrides]
        schema = schema.append(pa.field(OVERRIDE_PREFIX + key, pa.array(values).type))
    records = []
    for r in rows:
        rec = r.model_dump(exclude={"overrides"})
        rec["other_images"] = list(r.other_images)
        rec.update({OVERRIDE_PREFIX + k: r.overrides.get(k) for k in override_keys})
        records.append(rec)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        pq.write_table(pa.Table.from_pylist(records, schema=schema), tmp)
    return path


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def random_rows(n: int, seed: int) -> list[ManifestRow]:
    """`n` identities of the random scenario: ids random-0000…, per-row seeds derived from `seed`."""
    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    width = max(4, len(str(n - 1)))
    ids = [f"random-{i:0{width}d}" for i in range(n)]
    return [ManifestRow(identity_id=i, scenario="random", seed=derive_seed(seed, i)) for i in ids]


def with_variants(rows: list[ManifestRow], variants: Sequence[str]) -> list[ManifestRow]:
    """Each row once per variant (ids `<id>.<variant>`, '+' spelt '_'), same seed and photos, so
    every variant (a row of the paper's tables) unlearns the same identities. No variants: `rows`."""
    if not variants:
        return rows
    if len(set(variants)) != len(variants):
        raise ConfigError(f"variants listed twice: {list(variants)}")
    return [row.model_copy(update={"identity_id": f"{row.identity_id}.{v.replace('+', '_')}", "variant": v})
            for row in rows for v in variants]


def folder_rows(root: Path, manifest_dir: Path, scenario: Scenario, seed: int) -> list[ManifestRow]:
    """One identity per sub-folder of `root` (sorted): first image = source, the rest = other_images.

    Image paths are written relative to `manifest_dir`, where the manifest will live, so the pair
    can be moved together. Raises ConfigError naming the folder for an empty person folder or a
    folder name that cannot be an identity_id.
    """
    if not root.is_dir():
        raise ConfigError(f"not a folder: {root}")
    people = sorted(p for p in root.iterdir() if p.is_dir())
    if not people:
        raise ConfigError(f"{root} has no sub-folders; expected one sub-folder of images per person")
    rows = []
    for person in people:
        images = sorted(p for p in person.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise ConfigError(f"{person}: no images ({', '.join(IMAGE_SUFFIXES)}) for this person")
        rel = [os.path.relpath(p.resolve(), manifest_dir.resolve()) for p in images]
        try:
            rows.append(ManifestRow(identity_id=person.name, scenario=scenario, seed=derive_seed(seed, person.name),
                                    source=rel[0], other_images=tuple(rel[1:])))
        except ValidationError as exc:
            raise ConfigError(f"{person}: {describe_validation_error(exc)}") from exc
    return rows
