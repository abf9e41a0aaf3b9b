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
from guide_ray.models import weights as W


def test_weights_dir_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(W.ENV_VAR, raising=False)
    assert W.resolve_weights_dir(None) == tmp_path / "weights"
    monkeypatch.setenv(W.ENV_VAR, str(tmp_path / "from-env"))
    assert W.resolve_weights_dir(None) == tmp_path / "from-env"
    assert W.resolve_weights_dir("cli-dir") == tmp_path / "cli-dir"       # CLI beats the env var
    assert W.resolve_weights_dir(Path("~")) == Path.home().resolve()


def test_registry_lists_every_file_once_with_a_source() -> None:
    names = [f.name for f in W.WEIGHT_FILES]
    assert len(names) == len(set(names))
    assert {"ffhqrebalanced512-128.pkl", "w_avg_ffhqrebalanced512-128.pt", "model_ir_se50.pth",
            "CurricularFace_Backbone.pth", "encoder_FFHQ.pt", "vgg16-397923af.pth", "inception-2015-12-05.pt",
            "ffhq_real_feat.npy", "w600k_r50.onnx", "psp_ffhq_encode.pt"} == set(names)
    for f in W.WEIGHT_FILES:
        assert f.url.startswith("https://") and f.needed_by
        if f.sha256 is None:
            assert f.hash_source == W.NOT_PUBLISHED
        else:
            assert len(f.sha256) == 64 and int(f.sha256, 16) >= 0 and f.hash_source != W.NOT_PUBLISHED
    assert W.VGG16.sha256.startswith("397923af")         # torchvision's published prefix


def test_docs_table_names_every_registry_file() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "weights.md").read_text()
    for f in W.WEIGHT_FILES:
        assert f"`{f.name}`" in doc, f.name
        if f.sha256:
            assert f.sha256 in doc, f.name


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_check_weights_found_missing_ok_and_wrong_hash(tmp_path: Path) -> None:
    good, bad = b"the published bytes", b"something else"
    files = (
        replace(W.VGG16, sha256=_sha(good)),                 # a file whose digest we know
        replace(W.INCEPTION, sha256=_sha(good)),
        W.IR_SE50,                                           # no published digest
        W.GOAE_ENCODER,
    )
    (tmp_path / W.VGG16.name).write_bytes(good)
    (tmp_path / W.INCEPTION.name).write_bytes(bad)
    (tmp_path / W.IR_SE50.name).write_bytes(bad)
    statuses = W.check_weights(tmp_path, files=files)
    assert [s.status for s in statuses] == ["ok", "wrong-hash", "found", "missing"]
    assert statuses[1].sha256 == _sha(bad) and statuses[0].size == len(good)
    assert statuses[2].sha256 is None                      # nothing to compare with: not hashed


def test_hash_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 1000)
    first = W.file_sha256(path)
    hits = W._sha256_of.cache_info().hits
    assert W.file_sha256(path) == first and W._sha256_of.cache_info().hits == hits + 1
    path.write_bytes(b"b" * 1001)
    os.utime(path, ns=(1, 1))
    assert W.file_sha256(path) == _sha(b"b" * 1001)


def test_needed_files_follow_backend_scenarios_and_metrics() -> None:
    assert W.needed_files("tiny", metrics=["ID", "FID_pre"], scenarios=["celebahq"]) == []
    base = [W.EG3D_PKL, W.IR_SE50, W.VGG16]
    assert W.needed_files("eg3d-ffhq512-128", scenarios=["random"]) == base
    assert W.needed_files("eg3d-ffhq512-128", scenarios=["random", "celebahq"]) == [*base, W.GOAE_ENCODER]
    got = W.needed_files("eg3d-ffhq512-128", metrics=["ID", "ID_others", "delta_FID_real", "FID_pre"])
    assert got == [*base, W.CURRICULARFACE, W.INCEPTION, W.FFHQ_FEATS]
    assert W.INSIGHTFACE_ARCFACE in W.needed_files("eg3d-ffhq512-128", metrics=["ID"], id_metric="insightface")
    assert W.needed_files("eg3d-ffhq512-128", metrics=["ID"], id_metric="irse50") == base   # already needed
    with pytest.raises(ConfigError, match="did you mean 'ffhq'"):
        W.needed_files("eg3d-ffhq512-128", scenarios=["fhq"])
    with pytest.raises(ConfigError, match="did you mean 'FID_pre'"):
        W.needed_files("eg3d-ffhq512-128", metrics=["FID_pr"])
    with pytest.raises(ConfigError, match="did you mean 'eg3d-ffhq512-128'"):
        W.needed_files("eg3d-ffhq512", scenarios=[])


def test_require_backend_files_names_every_missing_file_at_once(tmp_path: Path) -> None:
    assert W.require_backend_files("tiny", tmp_path / "absent", metrics=["FID_pre"]) == {}
    (tmp_path / W.IR_SE50.name).write_bytes(b"x")
    with pytest.raises(WeightsMissing) as info:
        W.require_backend_files("eg3d-ffhq512-128", tmp_path, metrics=["delta_FID_real"], scenarios=["ffhq"])
    message = str(info.value)
    for f in (W.EG3D_PKL, W.VGG16, W.GOAE_ENCODER, W.INCEPTION, W.FFHQ_FEATS):
        assert f.name in message and f.url.split()[0] in message
    assert W.IR_SE50.name not in message and "\n" not in message        # one line for the CLI


def test_require_backend_files_rejects_wrong_hash_then_returns_paths(tmp_path: Path) -> None:
    for f in (W.EG3D_PKL, W.IR_SE50, W.VGG16):
        (tmp_path / f.name).write_bytes(b"not the real file")
    with pytest.raises(WeightsInvalid, match="vgg16-397923af.pth: sha256"):
        W.require_backend_files("eg3d-ffhq512-128", tmp_path)
    with pytest.raises(WeightsInvalid, match="download.pytorch.org"):
        W.resolve_file(W.VGG16.name, tmp_path)
    assert W.resolve_file(W.IR_SE50.name, tmp_path) == tmp_path / W.IR_SE50.name
    with pytest.raises(WeightsMissing, match="CurricularFace_Backbone.pth"):
        W.resolve_file(W.CURRICULARFACE.name, tmp_path)
    with pytest.raises(ConfigError, match="did you mean 'model_ir_se50.pth'"):
        W.resolve_file("model_ir_se50.pt", tmp_path)


def test_format_weights_report_is_a_table_of_every_status(tmp_path: Path) -> None:
    (tmp_path / W.EG3D_PKL.name).write_bytes(b"x")
    (tmp_path / W.VGG16.name).write_bytes(b"x")
    report = W.format_weights_report(W.check_weights(tmp_path))
    lines = report.splitlines()
    assert lines[0].split() == ["file", "status", "needed", "by"]
    rows = {line.split()[0]: line for line in lines[2:] if line and not line.startswith("weights directory")}
    assert set(rows) == {f.name for f in W.WEIGHT_FILES}
    assert "found" in rows[W.EG3D_PKL.name] and "WRONG SHA256" in rows[W.VGG16.name]
    assert "MISSING" in rows[W.CURRICULARFACE.name] and "missing (optional)" in rows[W.W_AVG.name]
    assert str(tmp_path) in report


def test_registry_imports_neither_torch_nor_ray() -> None:
    code = "import sys, guide_ray.models.weights; print('torch' in sys.modules, 'ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
