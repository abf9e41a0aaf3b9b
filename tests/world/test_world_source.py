"""Where the world is read from, strictly; and, given a trained world, what its networks do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from guide_ray.errors import WeightsInvalid, WeightsMissing
from guide_ray.utils.seeding import make_rng
from guide_ray.world import shipped
from guide_ray.world.evaluate import verification_scores
from guide_ray.world.population import sample_identities
from guide_ray.world.train import CONFIG_FILE, FILES, MANIFEST_FILE, SHIPPED


def test_a_trained_folder_is_read_against_its_own_manifest(mini_world: Path) -> None:
    source = shipped.world_source(mini_world)
    assert source.origin == "trained" and source.folder == mini_world / "world"
    assert set(source.digests) == {CONFIG_FILE, *(FILES[s] for s in SHIPPED)}
    G = shipped.load_world_generator(source)
    assert not G.training and not any(p.requires_grad for p in G.parameters())
    assert shipped.world_config(source)["files"] == FILES


def test_a_changed_or_missing_file_is_refused_by_name(mini_world: Path, tmp_path: Path) -> None:
    shutil.copytree(mini_world / "world", tmp_path / "world", ignore=shutil.ignore_patterns("checkpoints"))
    source = shipped.world_source(tmp_path)
    raw = bytearray((tmp_path / "world" / FILES["id_metric"]).read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "world" / FILES["id_metric"]).write_bytes(bytes(raw))
    with pytest.raises(WeightsInvalid, match="id_metric.pt"):
        shipped.load_identity_net("id_metric", source)
    (tmp_path / "world" / FILES["generator"]).unlink()
    with pytest.raises(WeightsMissing, match="generator.pt"):
        shipped.load_world_generator(source)
    assert shipped.load_identity_net("id_loss", source) is not None       # the untouched file still loads
    (tmp_path / "world" / MANIFEST_FILE).write_text("[1, 2]")
    with pytest.raises(WeightsInvalid, match="manifest.json"):
        shipped.world_source(tmp_path)


def test_without_a_trained_world_the_error_says_how_to_train_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(shipped, "SHIPPED_SHA256", {})
    with pytest.raises(WeightsMissing, match=r"guide-ray world train --out .*world"):
        shipped.world_source(tmp_path)


def test_shipped_world_needs_its_pins(tmp_path: Path, monkeypatch, mini_world: Path) -> None:
    """A shipped world is read from the package against digests pinned in code, not its manifest."""
    monkeypatch.setattr(shipped, "PACKAGED_DIR", mini_world / "world")
    pins = json.loads((mini_world / "world" / MANIFEST_FILE).read_text())
    monkeypatch.setattr(shipped, "SHIPPED_SHA256", {**pins, FILES["generator"]: "0" * 64})
    source = shipped.world_source(tmp_path)                                 # no trained world there
    assert source.origin == "shipped"
    with pytest.raises(WeightsInvalid, match="generator.pt"):
        shipped.load_world_generator(source)


@pytest.fixture(scope="module")
def metric_scores(trained_world: Path) -> tuple[torch.Tensor, torch.Tensor]:
    net = shipped.load_identity_net("id_metric", shipped.world_source(trained_world))
    ids = sample_identities(40, make_rng(123, "test-heldout"))
    return verification_scores(net, ids, make_rng(123, "test-photos"))


def test_identity_network_separates_identities_far_better_than_views(metric_scores) -> None:
    same, different = metric_scores
    # two photos of one identity (other camera, light, expression) vs two identities
    assert float(same.mean()) > float(different.mean()) + 0.5
    assert float(torch.quantile(same, 0.1)) > float(torch.quantile(different, 0.9))


def test_quality_report_files_and_fields(mini_world: Path, tmp_path: Path) -> None:
    """`guide-ray world evaluate`'s report on a few-step world: the files, and figures within their ranges."""
    from guide_ray.world.quality import write_report

    report = write_report(shipped.world_source(mini_world), tmp_path, n_ids=4, n_gen=2, n_inv=1, inversion_steps=1)
    assert {p.name for p in tmp_path.iterdir()} == {"world_quality.json", "world_quality.md", "identity_cosines.png"}
    saved = json.loads((tmp_path / "world_quality.json").read_text())
    assert saved["origin"] == "trained" and saved["identity"]["id_metric"]["different"]["n"] == 12
    assert 0 <= saved["identity"]["id_loss"]["far_0.01"]["tar"] <= 1
    assert len(saved["generator"]["generator_vs_renderer"]) == len(saved["generator"]["yaws"])
    frontal = saved["generator"]["yaws"].index(0.0)
    assert saved["generator"]["renderer_vs_own_frontal"][frontal] == pytest.approx(1.0)
    assert saved["generator"]["generator_vs_own_frontal"][frontal] == pytest.approx(1.0)
    assert saved["generator"]["generator_different_latents"]["n"] == 2
    assert saved["inversion"]["photo_vs_inversion"]["n"] == 1
    assert "TAR @ FAR 1e-2" in (tmp_path / "world_quality.md").read_text()
    assert report["identity"]["id_loss"]["same"]["n"] == 4


def test_the_shipped_world_matches_its_pins_and_loads(tmp_path: Path) -> None:
    """The files inside the package are the pinned ones, and an empty weights folder reads them."""
    from guide_ray.utils.files import file_sha256

    assert set(shipped.SHIPPED_SHA256) == {CONFIG_FILE, *(FILES[s] for s in SHIPPED)}
    for name, digest in shipped.SHIPPED_SHA256.items():
        assert file_sha256(shipped.PACKAGED_DIR / name) == digest, name
    source = shipped.world_source(tmp_path)                                 # nothing trained here
    assert source.origin == "shipped" and source.folder == shipped.PACKAGED_DIR
    G = shipped.load_world_generator(source)
    assert G.backbone.mapping.w_avg.abs().sum() > 0
    for role in ("id_loss", "id_metric"):
        shipped.load_identity_net(role, source)
