"""GUIDE forgets a world identity, measured by the world's own ID metric, and leaves others alone.

The threshold is derived from the measured distributions (the id_metric's cosine at FAR = 1e-2
over different-identity photo pairs of held-out identities): below it, G_u's render of w_u is no
more similar to G_s's than two different people are; a random other identity stays above it.
"""

from __future__ import annotations

import pytest
import torch

from guide_ray.backends import get_backend
from guide_ray.config.guide import GuideConfig
from guide_ray.metrics.identity import N_VIEWS, id_metric_for, id_score
from guide_ray.models.nets.factory import build_loss_nets
from guide_ray.pipeline import unlearn_copy
from guide_ray.utils.seeding import make_rng
from guide_ray.world.evaluate import tar_at_far, verification_scores
from guide_ray.world.population import sample_identities
from guide_ray.world.shipped import load_identity_net, world_source

ITERATIONS, LR = 100, 1e-3          # the world table jobs' settings (jobs/world-*.yaml)


@pytest.mark.slow
def test_guide_forgets_one_world_identity_and_keeps_another(trained_world) -> None:
    source = world_source(trained_world)
    same, different = verification_scores(load_identity_net("id_metric", source),
                                          sample_identities(40, make_rng(5, "ids")), make_rng(5, "photos"))
    _, threshold = tar_at_far(same, different, far=1e-2)
    assert threshold < float(same.mean())                       # the two distributions are apart
    backend = get_backend("world")
    G_s = backend.load_generator(trained_world, torch.device("cpu"))
    nets = build_loss_nets("world", trained_world, "cpu")
    cfg = GuideConfig(iterations=ITERATIONS, lr=LR)
    w_u = backend.source_latent(G_s, 3, cfg.camera)
    w_other = backend.source_latent(G_s, 4, cfg.camera)
    G_u, _ = unlearn_copy(G_s, w_u, cfg, nets, seed=3)
    metric, views = id_metric_for("world", trained_world, "cpu"), backend.id_views(cfg.camera, N_VIEWS)
    forgotten = id_score(G_s, G_u, w_u, metric, views).similarity
    kept = id_score(G_s, G_u, w_other, metric, views).similarity
    assert forgotten < threshold < kept, (forgotten, threshold, kept)
