"""ID's 'before' renders cached per identity: same score as rendering them, rendered once."""

from __future__ import annotations

import copy

import torch

from guide_ray.backends.eg3d import random_source_latent, yaw_sweep
from guide_ray.config.guide import CameraConfig
from guide_ray.metrics.identity import BeforeCache, id_score
from guide_ray.models.eg3d.presets import build_generator
from guide_ray.models.nets.standin import StandInIdentity


def test_cached_before_gives_the_uncached_score_and_renders_once():
    G_s = build_generator("tiny")
    G_u = copy.deepcopy(G_s)
    with torch.no_grad():
        for p in G_u.backbone.synthesis.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    camera = CameraConfig()
    sweep = yaw_sweep(camera, 3)
    rendered = []

    def views(G, w):
        rendered.append(G)
        return sweep(G, w)

    metric = StandInIdentity()
    w, other = random_source_latent(G_s, 3, camera), random_source_latent(G_s, 4, camera)
    plain = id_score(G_s, G_u, w, metric, views)
    cache = BeforeCache(limit=1)
    first = id_score(G_s, G_u, w, metric, views, before=cache.get(G_s, w, metric, views, "cam:3"))
    rendered.clear()
    again = id_score(G_s, G_u, w, metric, views, before=cache.get(G_s, w, metric, views, "cam:3"))
    assert first == plain == again and plain.similarity < 0.9999
    assert rendered == [G_u] and (cache.hits, cache.misses) == (1, 1)        # G_s not rendered again
    cache.get(G_s, other, metric, views, "cam:3")                              # another latent evicts (limit 1)
    cache.get(G_s, w, metric, views, "cam:3")
    assert (cache.hits, cache.misses) == (1, 3)
