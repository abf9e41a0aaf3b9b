"""The weights-directory registry: resolution order, status checks, fail-fast requirements, report."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from guide_ray.errors import ConfigError, WeightsInvalid, WeightsMissing
from guide_ray.models import weights as weight_registry
from guide_ray.utils import files


def test_weights_dir_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(weight_registry.ENV_VAR, raising=False)
    assert weight_registry.resolve_weights_dir(None) == tmp_path / "weights"
    monkeypatch.setenv(weight_registry.ENV_VAR, str(tmp_path / "from-env"))
    assert weight_registry.resolve_weights_dir(None) == tmp_path / "from-env"
    assert weight_registry.resolve_weights_dir("cli-dir") == tmp_path / "cli-dir"       # CLI beats the env var
    assert weight_registry.resolve_weights_dir(Path("~")) == Path.home().resolve()


def test_registry_lists_every_file_once_with_a_source() -> None:
    names = [f.name for f in weight_registry.WEIGHT_FILES]
    assert len(names) == len(set(names))
    assert {"ffhqrebalanced512-128.pkl", "w_avg_ffhqrebalanced512-128.pt", "model_ir_se50.pth",
            "CurricularFace_Backbone.pth", "encoder_FFHQ.pt", "vgg16-397923af.pth", "inception-2015-12-05.pt",
            "pt_inception-2015-12-05-6726825d.pth", "ffhq_real_feat.npy", "w600k_r50.onnx", "psp_ffhq_encode.pt"} == set(names)
    for f in weight_registry.WEIGHT_FILES:
        assert f.url.startswith("https://") and f.needed_by
        if f.sha256 is None and f.sha256_prefix is None:
            assert f.hash_source == weight_registry.NOT_PUBLISHED
        elif f.sha256 is None:
            assert f.sha256_prefix in f.name and f.hash_source != weight_registry.NOT_PUBLISHED   # torch.hub's file-name rule
        else:
            assert len(f.sha256) == 64 and int(f.sha256, 16) >= 0 and f.hash_source != weight_registry.NOT_PUBLISHED
    assert weight_registry.VGG16.sha256.startswith("397923af")         # torchvision's published prefix
    assert weight_registry.PT_INCEPTION.sha256_prefix == "6726825d"    # pytorch-fid's published prefix


def test_docs_table_names_every_registry_file() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "weights.md").read_text()
    for f in weight_registry.WEIGHT_FILES:
        assert f"`{f.name}`" in doc, f.name
        if f.published_hash:
            assert f.published_hash in doc, f.name


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_check_weights_found_missing_ok_and_wrong_hash(tmp_path: Path) -> None:
    good, bad = b"the published bytes", b"something else"
    files = (
        replace(weight_registry.VGG16, sha256=_sha(good)),                 # a file whose digest we know
        replace(weight_registry.INCEPTION, sha256=_sha(good)),
        weight_registry.IR_SE50,                                           # no published digest
        weight_registry.GOAE_ENCODER,
    )
    (tmp_path / weight_registry.VGG16.name).write_bytes(good)
    (tmp_path / weight_registry.INCEPTION.name).write_bytes(bad)
    (tmp_path / weight_registry.IR_SE50.name).write_bytes(bad)
    statuses = weight_registry.check_weights(tmp_path, files=files)
    assert [s.status for s in statuses] == ["ok", "wrong-hash", "found", "missing"]
    assert statuses[1].sha256 == _sha(bad) and statuses[0].size == len(good)
    assert statuses[2].sha256 is None                      # nothing to compare with: not hashed


def test_a_published_hash_prefix_is_checked(tmp_path: Path) -> None:
    good, bad = b"the published bytes", b"something else"
    file = replace(weight_registry.PT_INCEPTION, sha256_prefix=_sha(good)[:8])
    (tmp_path / file.name).write_bytes(good)
    assert weight_registry.check_file(file, tmp_path).status == "ok"
    (tmp_path / file.name).write_bytes(bad)
    os.utime(tmp_path / file.name, ns=(2, 2))
    status = weight_registry.check_file(file, tmp_path)
    assert status.status == "wrong-hash" and status.sha256 == _sha(bad)
    # the real registry entry refuses a file whose digest does not start with 6726825d
    assert weight_registry.check_file(weight_registry.PT_INCEPTION, tmp_path).status == "wrong-hash"


def test_hash_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 1000)
    first = files.file_sha256(path)
    hits = files._sha256_of.cache_info().hits
    assert files.file_sha256(path) == first and files._sha256_of.cache_info().hits == hits + 1
    path.write_bytes(b"b" * 1001)
    os.utime(path, ns=(1, 1))
    assert files.file_sha256(path) == _sha(b"b" * 1001)


def test_needed_files_follow_backend_scenarios_and_metrics() -> None:
    assert weight_registry.needed_files("tiny", metrics=["ID", "FID_pre"], scenarios=["celebahq"]) == []
    base = [weight_registry.EG3D_PKL, weight_registry.IR_SE50, weight_registry.VGG16]
    assert weight_registry.needed_files("eg3d-ffhq512-128", scenarios=["random"]) == base
    assert weight_registry.needed_files("eg3d-ffhq512-128", scenarios=["random", "celebahq"]) == [*base, weight_registry.GOAE_ENCODER]
    got = weight_registry.needed_files("eg3d-ffhq512-128", metrics=["ID", "ID_others", "delta_FID_real", "FID_pre"])
    assert got == [*base, weight_registry.CURRICULARFACE, weight_registry.PT_INCEPTION, weight_registry.FFHQ_FEATS]      # GUIDE's extractor by default
    clean = weight_registry.needed_files("eg3d-ffhq512-128", metrics=["delta_FID_real"], fid_extractors=["clean-fid"],
                           guide_real_features=False)                       # own real statistics
    assert clean == [*base, weight_registry.INCEPTION]
    with pytest.raises(ConfigError, match="unknown FID extractor 'torch-fid'"):
        weight_registry.needed_files("eg3d-ffhq512-128", metrics=["FID_pre"], fid_extractors=["torch-fid"])
    assert weight_registry.INSIGHTFACE_ARCFACE in weight_registry.needed_files("eg3d-ffhq512-128", metrics=["ID"], id_metric="insightface")
    assert weight_registry.needed_files("eg3d-ffhq512-128", metrics=["ID"], id_metric="irse50") == base   # already needed
    with pytest.raises(ConfigError, match="did you mean 'ffhq'"):
        weight_registry.needed_files("eg3d-ffhq512-128", scenarios=["fhq"])
    with pytest.raises(ConfigError, match="did you mean 'FID_pre'"):
        weight_registry.needed_files("eg3d-ffhq512-128", metrics=["FID_pr"])
    with pytest.raises(ConfigError, match="did you mean 'eg3d-ffhq512-128'"):
        weight_registry.needed_files("eg3d-ffhq512", scenarios=[])


def test_require_backend_files_names_every_missing_file_at_once(tmp_path: Path) -> None:
    assert weight_registry.require_backend_files("tiny", tmp_path / "absent", metrics=["FID_pre"]) == {}
    (tmp_path / weight_registry.IR_SE50.name).write_bytes(b"x")
    with pytest.raises(WeightsMissing) as info:
        weight_registry.require_backend_files("eg3d-ffhq512-128", tmp_path, metrics=["delta_FID_real"], scenarios=["ffhq"])
    message = str(info.value)
    for f in (weight_registry.EG3D_PKL, weight_registry.VGG16, weight_registry.GOAE_ENCODER, weight_registry.PT_INCEPTION, weight_registry.FFHQ_FEATS):
        assert f.name in message and f.url.split()[0] in message
    assert weight_registry.IR_SE50.name not in message and "\n" not in message        # one line for the CLI


def test_require_backend_files_rejects_wrong_hash_then_returns_paths(tmp_path: Path) -> None:
    for f in (weight_registry.EG3D_PKL, weight_registry.IR_SE50, weight_registry.VGG16):
        (tmp_path / f.name).write_bytes(b"not the real file")
    with pytest.raises(WeightsInvalid, match="vgg16-397923af.pth: sha256"):
        weight_registry.require_backend_files("eg3d-ffhq512-128", tmp_path)
    with pytest.raises(WeightsInvalid, match="download.pytorch.org"):
        weight_registry.resolve_file(weight_registry.VGG16.name, tmp_path)
    assert weight_registry.resolve_file(weight_registry.IR_SE50.name, tmp_path) == tmp_path / weight_registry.IR_SE50.name
    with pytest.raises(WeightsMissing, match="CurricularFace_Backbone.pth"):
        weight_registry.resolve_file(weight_registry.CURRICULARFACE.name, tmp_path)
    with pytest.raises(ConfigError, match="did you mean 'model_ir_se50.pth'"):
        weight_registry.resolve_file("model_ir_se50.pt", tmp_path)


def test_format_weights_report_is_a_table_of_every_status(tmp_path: Path) -> None:
    (tmp_path / weight_registry.EG3D_PKL.name).write_bytes(b"x")
    (tmp_path / weight_registry.VGG16.name).write_bytes(b"x")
    report = weight_registry.format_weights_report(weight_registry.check_weights(tmp_path))
    lines = report.splitlines()
    assert lines[0].split() == ["file", "status", "needed", "by"]
    rows = {line.split()[0]: line for line in lines[2:] if line and not line.startswith("weights directory")}
    assert set(rows) == {f.name for f in weight_registry.WEIGHT_FILES}
    assert "found" in rows[weight_registry.EG3D_PKL.name] and "WRONG SHA256" in rows[weight_registry.VGG16.name]
    assert "MISSING" in rows[weight_registry.CURRICULARFACE.name] and "missing (optional)" in rows[weight_registry.W_AVG.name]
    assert str(tmp_path) in report


def test_registry_imports_neither_torch_nor_ray() -> None:
    code = "import sys, guide_ray.models.weights; print('torch' in sys.modules, 'ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
