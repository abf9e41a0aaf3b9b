"""Manifest edge: per-row errors with row numbers, whole-file errors, generators, round trip."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from guide_ray.config.manifest import (
    ManifestRow,
    derive_seed,
    folder_rows,
    random_rows,
    read_manifest,
    resolve_media,
    write_manifest,
)
from guide_ray.errors import ConfigError


def _write(path: Path, columns: dict[str, list]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def test_random_rows_ids_and_derived_seeds() -> None:
    rows = random_rows(3, seed=7)
    assert [r.identity_id for r in rows] == ["random-0000", "random-0001", "random-0002"]
    assert all(r.scenario == "random" and r.source == "" for r in rows)
    assert len({r.seed for r in rows}) == 3
    assert [r.seed for r in rows] == [r.seed for r in random_rows(3, seed=7)]
    assert [r.seed for r in rows] != [r.seed for r in random_rows(3, seed=8)]
    assert rows[1].seed == derive_seed(7, "random-0001")


def test_round_trip_keeps_rows_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    rows = [*random_rows(2, 0),
            ManifestRow(identity_id="p1", scenario="custom", seed=3, source="a.png", other_images=("a.png",),
                        variant="baseline", overrides={"d": 20.0})]
    read = read_manifest(write_manifest(rows, tmp_path / "m.parquet"))
    assert read.errors == []
    assert [r for _, r in read.rows] == rows
    assert [n for n, _ in read.rows] == [0, 1, 2]


def test_bad_rows_are_reported_with_number_and_reason_and_good_rows_kept(tmp_path: Path) -> None:
    (tmp_path / "ok.png").write_bytes(b"x")
    path = _write(tmp_path / "m.parquet", {
        "identity_id": ["good-0", "has space", "good-0", "p3", "p4", "p5", "good-6", None],
        "scenario": ["random", "random", "random", "ffhq", "celebahq", "martian", "custom", "random"],
        "seed": [1, 2, 3, 4, 5, 6, 7, 8],
        "source": [None, None, None, None, "missing.png", "ok.png", "ok.png", None],
    })
    read = read_manifest(path)
    assert [r.identity_id for _, r in read.rows] == ["good-0", "good-6"]
    assert [n for n, _ in read.rows] == [0, 6]
    reasons = {e.row: e.reason for e in read.errors}
    assert set(reasons) == {1, 2, 3, 4, 5, 7}
    assert "identity_id" in reasons[1]
    assert "duplicate identity_id (first at row 0)" in reasons[2]
    assert "needs a source image" in reasons[3]
    assert "source not found" in reasons[4] and "missing.png" in reasons[4]
    assert "scenario" in reasons[5]
    assert "identity_id is null" in reasons[7]
    assert str(read.errors[0]).startswith("manifest row 1 (has space):")


def test_random_row_with_a_source_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    path = _write(tmp_path / "m.parquet", {"identity_id": ["r"], "scenario": ["random"], "seed": [0],
                                           "source": ["a.png"]})
    [err] = read_manifest(path).errors
    assert "source and other_images must be empty" in err.reason


def test_negative_seed_and_bad_override_type(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.parquet", {"identity_id": ["a", "b"], "scenario": ["random"] * 2, "seed": [-1, 2],
                                           "guide.d": [None, 12.5]})
    read = read_manifest(path)
    assert [e.row for e in read.errors] == [0]
    assert "seed" in read.errors[0].reason
    assert read.rows[0][1].overrides == {"d": 12.5}


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"identity_id": ["a"], "seed": [1]}, "missing required column 'scenario'"),
        ({"identity_id": ["a"], "scenario": ["random"], "seed": [1], "varient": ["guide"]}, "did you mean 'variant'"),
        ({"identity_id": ["a"], "scenario": ["random"], "seed": ["one"]}, "column 'seed' has type string"),
        ({"identity_id": ["a"], "scenario": ["random"], "seed": [1], "other_images": ["x.png"]}, "list<string>"),
    ],
)
def test_whole_file_problems_raise_config_error(tmp_path: Path, columns: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_manifest(_write(tmp_path / "m.parquet", columns))


def test_unreadable_manifest(tmp_path: Path) -> None:
    (tmp_path / "m.parquet").write_text("not parquet")
    with pytest.raises(ConfigError, match="cannot read manifest"):
        read_manifest(tmp_path / "m.parquet")


def test_folder_rows_sorted_relative_and_seeded(tmp_path: Path) -> None:
    for person, names in {"bob": ["2.png", "1.jpg", "notes.txt"], "alice": ["x.PNG"]}.items():
        (tmp_path / "people" / person).mkdir(parents=True)
        for n in names:
            (tmp_path / "people" / person / n).write_bytes(b"x")
    out_dir = tmp_path / "manifests"
    rows = folder_rows(tmp_path / "people", out_dir, "celebahq", seed=1)
    assert [r.identity_id for r in rows] == ["alice", "bob"]
    bob = rows[1]
    assert bob.source == "../people/bob/1.jpg" and bob.other_images == ("../people/bob/2.png",)
    assert bob.scenario == "celebahq" and bob.seed == derive_seed(1, "bob")
    read = read_manifest(write_manifest(rows, out_dir / "m.parquet"))
    assert read.errors == [] and len(read.rows) == 2
    assert resolve_media(bob.source, out_dir) == str((tmp_path / "people/bob/1.jpg").resolve())


def test_folder_rows_names_the_empty_person_folder(tmp_path: Path) -> None:
    (tmp_path / "people" / "carol").mkdir(parents=True)
    (tmp_path / "people" / "carol" / "readme.txt").write_text("no photos")
    with pytest.raises(ConfigError, match="carol: no images"):
        folder_rows(tmp_path / "people", tmp_path, "custom", seed=0)


def test_uris_the_pipeline_cannot_open_are_rejected_per_row(tmp_path: Path) -> None:
    photo = tmp_path / "my photo.png"
    photo.write_bytes(b"png")
    sources = ["s3://bucket/a.png", "https://example.org/b.png", "file:///nowhere/c.png",
               "file://" + str(photo).replace(" ", "%20"), str(photo)]
    path = _write(tmp_path / "m.parquet", {"identity_id": ["s3", "web", "gone", "file", "plain"],
                                           "scenario": ["ffhq"] * 5, "seed": [1, 2, 3, 4, 5], "source": sources})
    read = read_manifest(path)
    assert [number for number, _ in read.rows] == [3, 4]  # the rest of the manifest goes on
    assert resolve_media(read.rows[0][1].source, tmp_path) == str(photo)
    assert [(e.row, e.identity_id) for e in read.errors] == [(0, "s3"), (1, "web"), (2, "gone")]
    assert "'s3://bucket/a.png' cannot be read: the pipeline opens local files only" in str(read.errors[0])
    assert "source not found: /nowhere/c.png" in str(read.errors[2])


def test_row_errors_are_escaped_for_logs(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.parquet", {"identity_id": ["a\nERROR forged line"], "scenario": ["random"],
                                           "seed": [1]})
    read = read_manifest(path)
    assert read.rows == [] and len(read.errors) == 1
    assert "\n" not in str(read.errors[0]) and "a\\nERROR forged line" in str(read.errors[0])
