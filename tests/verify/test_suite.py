"""The attack suite in-process on the tiny world (no Ray): verdicts, the worst case, the evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from guide_ray.config.guide import GuideConfig
from guide_ray.config.job import JobSpec, WorkItem
from guide_ray.config.verify import VerifySpec
from guide_ray.metrics.identity import id_score
from guide_ray.pipeline import unlearn_copy
from guide_ray.verify.suite import Verifier

SPEC = VerifySpec(far=0.05, calibration_identities=8, id_views=3, attack_steps=1, pose_yaws=2,
                  pose_pitch_offsets=(0.0,), relearn_steps=1, relearn_check_every=1, probes=3)
FEWER_ATTACKS = {"starts": ("encoder",), "spaces": ("W+",)}   # the first test runs every attack


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    job = JobSpec.model_validate({"name": "v", "manifest": "m.parquet", "output_dir": "run", "device": "cpu",
                                  "model": {"backend": "tiny", "inversion": {"projection_steps": 1}}})
    return Verifier(job, SPEC, "cpu")


def _item(seed: int = 5) -> WorkItem:
    return WorkItem(identity_id="random-0005", scenario="random", backend="tiny", source="", seed=seed,
                    variant="guide", guide=GuideConfig(), run_key="k" * 16)


def _with(v: Verifier, **changes: object) -> Verifier:
    """The same loaded verifier (threshold included) with other attack settings."""
    other = object.__new__(Verifier)
    other.__dict__.update(v.__dict__, spec=VerifySpec.model_validate({**v.spec.model_dump(), **changes}))
    return other


def _same_latent_id(v: Verifier, G_u: torch.nn.Module, item: WorkItem) -> float:
    """GUIDE's ID metric (metrics.identity) on the suite's scoring views."""
    w_u = v.backend.source_latent(v.G_s, item.seed, item.guide.camera)
    return id_score(v.G_s, G_u, w_u, v.metric, v.backend.id_views(item.guide.camera, SPEC.id_views)).similarity


def test_an_unlearned_copy_of_the_source_generator_is_not_forgotten(verifier: Verifier, tmp_path: Path) -> None:
    weights = tmp_path / "G_u.pt"
    torch.save(verifier.backend.unlearned_state(verifier.G_s), weights)      # G_u = G_s: nothing was unlearned
    out = verifier.verify(_item(), weights, tmp_path / "out")
    assert out.same_latent == pytest.approx(1.0, abs=1e-6)
    assert out.threshold < out.same_latent and not out.forgotten
    assert out.relearn_steps == 0                                            # already above before any step
    assert out.id_worst >= out.same_latent
    names = set(out.attack_scores)
    assert {"same-latent", "encoder", "optim-W-w_avg", "optim-W+-w_avg", "optim-W-encoder", "optim-W+-random",
            "pose-sweep:w_u"} <= names
    assert json.loads((tmp_path / "out" / "attacks.json").read_text()) == out.attack_scores
    assert (tmp_path / "out" / "attack.png").stat().st_size > 0 and (tmp_path / "out" / "collateral.png").is_file()
    assert out.collateral.drift_mean == pytest.approx(0.0, abs=1e-6)         # nobody else changed either


def test_worst_case_is_never_below_the_same_latent_id(verifier: Verifier, tmp_path: Path) -> None:
    item = _item(seed=11)
    w_u = verifier.backend.source_latent(verifier.G_s, item.seed, item.guide.camera)
    guide = GuideConfig(iterations=3, lr=0.05)
    G_u, _ = unlearn_copy(verifier.G_s, w_u, guide, verifier.nets, item.seed)
    weights = tmp_path / "G_u.pt"
    torch.save(verifier.backend.unlearned_state(G_u), weights)
    out = Verifier.verify(_with(verifier, **FEWER_ATTACKS), item, weights, tmp_path / "out")
    same = _same_latent_id(verifier, G_u, item)
    assert same < 1.0 - 1e-6                                                 # the generator did change
    assert out.same_latent == pytest.approx(same, abs=1e-7)                  # attack "same-latent" is the ID metric
    assert out.id_worst >= same
    assert out.id_worst == pytest.approx(max(out.attack_scores.values()), abs=1e-6)
    assert out.attack_scores[out.attack_worst] == pytest.approx(out.id_worst, abs=1e-6)


def test_a_user_threshold_decides_the_verdict(tmp_path: Path) -> None:
    job = JobSpec.model_validate({"name": "v", "manifest": "m.parquet", "output_dir": "run", "device": "cpu",
                                  "model": {"backend": "tiny", "inversion": {"projection_steps": 1}}})
    strict = Verifier(job, VerifySpec.model_validate({**SPEC.model_dump(), **FEWER_ATTACKS, "threshold": 1.0}), "cpu")
    assert strict.threshold() == 1.0                                         # no calibration renders at all
    weights = tmp_path / "G_u.pt"
    torch.save(strict.backend.unlearned_state(strict.G_s), weights)
    out = strict.verify(_item(), weights, tmp_path / "out")
    assert out.forgotten and out.relearn_steps is None                      # nothing scores above 1


def _photo(path: Path, seed: int) -> str:
    from PIL import Image

    pixels = torch.randint(0, 256, (256, 256, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    Image.fromarray(pixels.numpy()).save(path)
    return str(path)


def test_photo_identities_are_attacked_on_every_photo(verifier: Verifier, tmp_path: Path) -> None:
    item = WorkItem(identity_id="me", scenario="custom", backend="tiny", source=_photo(tmp_path / "a.png", 1),
                    other_images=(_photo(tmp_path / "b.png", 2),), seed=3, variant="guide", guide=GuideConfig(),
                    run_key="k" * 16)
    weights = tmp_path / "G_u.pt"
    torch.save(verifier.backend.unlearned_state(verifier.G_s), weights)
    out = Verifier.verify(_with(verifier, **FEWER_ATTACKS), item, weights, tmp_path / "out")
    assert out.others_attack in ("same-latent@other0", "encoder@other0")
    assert out.others_worst == pytest.approx(1.0, abs=1e-6)                  # G_u = G_s: its own inversion matches
    assert not out.forgotten and out.id_worst >= out.same_latent
