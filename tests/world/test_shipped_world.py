"""The shipped world: its files are the pinned ones, and its networks do what the README says."""

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
from guide_ray.world.train import CONFIG_FILE, FILES, MANIFEST_FILE

SHIPPED = {CONFIG_FILE, *FILES.values()}


def test_every_shipped_file_is_pinned_and_matches() -> None:
    assert set(shipped.SHIPPED_SHA256) == SHIPPED
    for name in SHIPPED:
        assert shipped.verified_file(name).is_file()
    # the manifest written by `guide-ray world train` agrees with the digests pinned in code
    manifest = json.loads((shipped.WEIGHTS_DIR / MANIFEST_FILE).read_text())
    assert manifest == shipped.SHIPPED_SHA256


def test_a_changed_or_missing_file_is_refused_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    shutil.copytree(shipped.WEIGHTS_DIR, folder, ignore=shutil.ignore_patterns("checkpoints"))
    raw = bytearray((folder / FILES["id_metric"]).read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (folder / FILES["id_metric"]).write_bytes(bytes(raw))
    with pytest.raises(WeightsInvalid, match="id_metric.pt"):
        shipped.load_identity_net("id_metric", folder)
    (folder / FILES["generator"]).unlink()
    with pytest.raises(WeightsMissing, match="generator.pt"):
        shipped.load_world_generator(folder)
    assert shipped.load_identity_net("id_loss", folder) is not None          # the untouched file still loads


def test_loading_is_strict_and_frozen() -> None:
    G = shipped.load_world_generator()
    assert not G.training and not any(p.requires_grad for p in G.parameters())
    assert torch.isfinite(G.backbone.mapping.w_avg).all() and G.backbone.mapping.w_avg.abs().sum() > 0


@pytest.fixture(scope="module")
def metric_scores() -> tuple[torch.Tensor, torch.Tensor]:
    net = shipped.load_identity_net("id_metric")
    ids = sample_identities(40, make_rng(123, "test-heldout"))
    return verification_scores(net, ids, make_rng(123, "test-photos"))


def test_identity_network_separates_identities_far_better_than_views(metric_scores) -> None:
    same, different = metric_scores
    # two photos of one identity (other camera, light, expression) vs two identities
    assert float(same.mean()) > float(different.mean()) + 0.5
    assert float(torch.quantile(same, 0.1)) > float(torch.quantile(different, 0.9))


def test_identity_network_golden_scores(metric_scores) -> None:
    same, different = metric_scores
    assert float(same.mean()) == pytest.approx(GOLDEN_SAME_MEAN, abs=1e-4)
    assert float(different.mean()) == pytest.approx(GOLDEN_DIFFERENT_MEAN, abs=1e-4)


GOLDEN_SAME_MEAN = float("nan")
GOLDEN_DIFFERENT_MEAN = float("nan")
