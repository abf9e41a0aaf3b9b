"""FID_pre / ΔFID_real machinery: statistics, Fréchet distance, cache, real features, rendering."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from guide_ray.config.guide import CameraConfig
from guide_ray.errors import WeightsInvalid, WeightsMissing
from guide_ray.config.job import FidSpec
from guide_ray.metrics import fid
from guide_ray.metrics.fid import StatsCache, StatsKey
from guide_ray.metrics.stats import FidStats, fid_plan, frechet_distance, load_real_features, load_real_stats
from guide_ray.models.nets.inception import StandInFeatures
from guide_ray.utils.images import quantize_like_png

EXTRACTOR = "test-extractor"


def _stats(seed: int, n: int = 400, dim: int = 6, shift: float = 0.0, extractor: str = EXTRACTOR) -> FidStats:
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((dim, dim))
    return FidStats.from_features(rng.standard_normal((n, dim)) @ mixing + shift, extractor=extractor)


def test_stats_are_mean_and_unbiased_covariance() -> None:
    feats = np.arange(12, dtype=np.float64).reshape(4, 3) ** 1.5
    stats = FidStats.from_features(feats, extractor=EXTRACTOR)
    np.testing.assert_allclose(stats.mu, feats.mean(axis=0), rtol=1e-12)
    centred = feats - feats.mean(axis=0)
    np.testing.assert_allclose(stats.sigma, centred.T @ centred / 3, rtol=1e-6)   # N - 1
    assert stats.n == 4 and stats.mu.dtype == np.float64
    assert stats.extractor == EXTRACTOR
    with pytest.raises(ValueError, match="N >= 2"):
        FidStats.from_features(feats[:1], extractor=EXTRACTOR)


def test_frechet_distance_closed_form_for_diagonal_covariances() -> None:
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, -1.0, 2.0])
    var1, var2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    a, b = FidStats(mu1, np.diag(var1), 10, EXTRACTOR), FidStats(mu2, np.diag(var2), 10, EXTRACTOR)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    assert fid.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert fid.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")
def test_frechet_distance_agrees_with_clean_fid() -> None:
    from cleanfid.fid import frechet_distance as clean_fid_distance

    a, b = _stats(0), _stats(1, shift=0.3)
    ours = fid.frechet_distance(a, b)
    assert ours > 0.1
    # clean-fid still passes scipy's deprecated `disp`; that is its warning, not ours.
    assert ours == pytest.approx(clean_fid_distance(a.mu, a.sigma, b.mu, b.sigma), rel=1e-9)
    with pytest.raises(ValueError, match="feature dimensions differ"):
        fid.frechet_distance(a, _stats(2, dim=5))


def test_frechet_distance_refuses_two_extractors_naming_both() -> None:
    a, b = _stats(0, extractor="pytorch-fid-inception-v3"), _stats(1, extractor="clean-fid-inception-v3")
    with pytest.raises(ValueError, match="'pytorch-fid-inception-v3' vs 'clean-fid-inception-v3'"):
        frechet_distance(a, b)


def test_frechet_distance_golden_value() -> None:
    """Pinned: a deterministic change of the formula (or of sqrtm handling) fails here."""
    a, b = _stats(0, n=64, dim=5), _stats(1, n=64, dim=5, shift=0.25)
    assert frechet_distance(a, b) == pytest.approx(GOLDEN_FRECHET, rel=1e-9)


GOLDEN_FRECHET = 10.106188618833368


def test_fid_pre_and_delta_fid_real() -> None:
    real, pre, unl = _stats(0), _stats(1, shift=0.2), _stats(2, shift=0.5)
    assert fid.fid_pre(pre, unl) == pytest.approx(fid.frechet_distance(pre, unl))
    delta = fid.delta_fid_real(real, pre, unl)
    assert delta == pytest.approx(fid.frechet_distance(real, unl) - fid.frechet_distance(real, pre))
    assert delta > 0                                    # the unlearned samples drifted further from "real"
    assert fid.delta_fid_real(real, pre, pre) == pytest.approx(0.0, abs=1e-9)


def _key(**change: object) -> StatsKey:
    base = {"generator": "g" * 64, "extractor": "stand-in", "n": 8, "seed": 0, "role": "pretrained",
            "camera": CameraConfig(), "batch_size": 4, "noise_mode": "random"}
    return StatsKey(**(base | change))


def test_stats_cache_roundtrip_is_atomic_and_never_recomputes(tmp_path: Path) -> None:
    cache = StatsCache(tmp_path / "fid-cache")
    calls: list[int] = []

    def compute() -> FidStats:
        calls.append(1)
        return _stats(len(calls))

    first = cache.get_or_compute(_key(), compute)
    again = cache.get_or_compute(_key(), compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(again.mu, first.mu)
    np.testing.assert_array_equal(again.sigma, first.sigma)
    assert again.n == first.n and again.extractor == first.extractor == EXTRACTOR
    assert [p.suffix for p in (tmp_path / "fid-cache").iterdir()] == [".npz"]     # no temp files left
    with np.load(cache.path(_key()), allow_pickle=False) as data:
        assert '"seed":0' in str(data["key"]).replace(" ", "")                     # provenance stored
    for change in ({"seed": 1}, {"n": 9}, {"extractor": "other"}, {"batch_size": 2},
                   {"camera": CameraConfig(look_at="guide-official")}):
        assert cache.path(_key(**change)) != cache.path(_key()), change
    assert cache.get(_key(seed=1)) is None


def test_load_real_features(tmp_path: Path) -> None:
    feats = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    np.save(tmp_path / "ffhq_real_feat.npy", feats)
    stats = load_real_features(tmp_path / "ffhq_real_feat.npy")
    np.testing.assert_allclose(stats.mu, feats.mean(axis=0), rtol=1e-5)
    assert stats.n == 50 and stats.sigma.shape == (8, 8)
    assert stats.extractor == "pytorch-fid-inception-v3"     # GUIDE's file: recorded with the stats
    with pytest.raises(WeightsMissing, match="ffhq_real_feat.npy"):
        load_real_features(tmp_path / "absent" / "ffhq_real_feat.npy")
    np.save(tmp_path / "objects.npy", np.array([{"mu": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(WeightsInvalid, match="not a plain numeric"):
        load_real_features(tmp_path / "objects.npy")
    np.save(tmp_path / "vector.npy", feats[0])
    with pytest.raises(WeightsInvalid, match=r"\[N, D\]"):
        load_real_features(tmp_path / "vector.npy")


def test_saved_real_stats_keep_their_extractor(tmp_path: Path) -> None:
    stats = _stats(0, extractor="clean-fid-inception-v3")
    stats.save(tmp_path / "real.npz", {"folder": "x"})
    back = load_real_stats(tmp_path / "real.npz")
    assert back.extractor == "clean-fid-inception-v3" and back.n == stats.n
    np.testing.assert_array_equal(back.sigma, stats.sigma)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(WeightsInvalid, match="junk.npz"):
        load_real_stats(tmp_path / "junk.npz")
    with pytest.raises(WeightsMissing, match="fid-stats"):
        load_real_stats(tmp_path / "absent.npz")


def test_fid_plan_uses_one_extractor_per_distance(tmp_path: Path) -> None:
    both = ("FID_pre", "delta_FID_real")
    default = fid_plan(FidSpec(), both)                     # GUIDE's features → pytorch-fid throughout
    assert (default.real, default.pre, default.guide_real_features) == ("pytorch-fid", "pytorch-fid", True)
    assert fid_plan(FidSpec(), ("FID_pre",)).kinds == ["pytorch-fid"]
    assert fid_plan(FidSpec(), ("ID",)).kinds == []
    _stats(0, extractor="clean-fid-inception-v3").save(tmp_path / "real.npz")
    own = fid_plan(FidSpec(real_stats=str(tmp_path / "real.npz")), both)
    assert (own.real, own.pre, own.guide_real_features) == ("clean-fid", "clean-fid", False)
    mixed = fid_plan(FidSpec(extractor="pytorch-fid", real_stats=str(tmp_path / "real.npz")), both)
    assert (mixed.real, mixed.pre) == ("clean-fid", "pytorch-fid") and mixed.kinds == ["clean-fid", "pytorch-fid"]


def test_quantize_like_png_matches_guides_conversion() -> None:
    img = torch.tensor([-1.5, -1.0, -0.999, 0.0, 0.99, 1.0, 2.0]).view(1, 1, 1, 7).expand(1, 3, 1, 7)
    got = quantize_like_png(img)[0, 0, 0].tolist()
    # x * 127.5 + 128, clamped to [0, 255], truncated: note 0 → 128 and 1 → 255 (not 127.5 / 255.5).
    assert got == [0, 0, 0, 128, 254, 255, 255]


# ---------------------------------------------------------------- rendering with the tiny generator


def _render(camera: CameraConfig):
    """The EG3D backends' FID render (GUIDE's evaluate_fid protocol)."""
    from guide_ray.backends import get_backend

    return get_backend("tiny").fid_render(camera)


@pytest.fixture(scope="module")
def tiny_g():
    from guide_ray.models.eg3d.presets import build_generator

    return build_generator("tiny", seed=0)


def test_generator_features_are_seeded_and_side_effect_free(tiny_g) -> None:
    extractor = StandInFeatures()
    camera = CameraConfig()
    tiny_g.train()
    rng_state = torch.random.get_rng_state()
    kw = {"camera": camera, "extractors": [extractor], "batch_size": 2, "role": "pretrained", "render": _render(camera)}
    a = fid.generator_features(tiny_g, 3, seed=7, **kw)[extractor.name]
    assert tiny_g.training                                   # mode restored
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    b = fid.generator_features(tiny_g, 3, seed=7, **kw)[extractor.name]
    c = fid.generator_features(tiny_g, 3, seed=8, **kw)[extractor.name]
    assert a.shape == (3, extractor.dim) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0
    with pytest.raises(ValueError, match="at least 2"):
        fid.generator_features(tiny_g, 1, seed=0, **kw)
    tiny_g.eval()


def test_generator_features_render_guides_evaluation_cameras(monkeypatch: pytest.MonkeyPatch) -> None:
    """Latents, yaws, pitch and conditioning pose are those of GUIDE's evaluate_fid protocol."""
    from guide_ray.models.eg3d.presets import build_generator

    tiny_g = build_generator("tiny", seed=0)                  # a private copy: its methods get spied on
    seen: dict[str, list[torch.Tensor]] = {"z": [], "c_map": [], "c": []}
    mapping, synthesis = tiny_g.mapping, tiny_g.synthesis

    def spy_mapping(z, c, truncation_psi=1, **kw):
        assert truncation_psi == 1
        seen["z"].append(z)
        seen["c_map"].append(c)
        return mapping(z, c, truncation_psi=truncation_psi, **kw)

    def spy_synthesis(ws, c, **kw):
        seen["c"].append(c)
        return synthesis(ws, c, **kw)

    monkeypatch.setattr(tiny_g, "mapping", spy_mapping)
    monkeypatch.setattr(tiny_g, "synthesis", spy_synthesis)
    camera = CameraConfig()
    fid.generator_features(tiny_g, 3, seed=3, camera=camera, extractors=[StandInFeatures()], batch_size=2,
                           role="unlearned", render=_render(camera))
    rng = torch.Generator().manual_seed(3)
    torch.testing.assert_close(torch.cat(seen["z"]), torch.randn(3, tiny_g.z_dim, generator=rng))
    yaw = (torch.rand(3, generator=rng) * 2 - 1) * camera.yaw_range
    c = torch.cat(seen["c"])                                  # [3, 25]
    origin = c[:, :16].view(3, 4, 4)[:, :3, 3]
    assert torch.allclose(origin.norm(dim=1), torch.full((3,), camera.radius), atol=1e-5)
    polar = torch.arccos(origin[:, 1] / camera.radius)        # y is up
    # EG3D maps the polar parameter v through arccos(1 - 2v/pi): v = pi/2 - 0.2 → about 75.4 deg from +y.
    expected_phi = math.acos(1 - 2 * (math.pi / 2 + camera.pitch_offset) / math.pi)
    torch.testing.assert_close(polar, torch.full((3,), expected_phi), atol=1e-5, rtol=0)
    azimuth = torch.atan2(origin[:, 0], origin[:, 2])         # frontal camera on +z; yaw turns it about y
    torch.testing.assert_close(azimuth, yaw, atol=1e-5, rtol=0)
    front = torch.cat(seen["c_map"])[:, :16].view(3, 4, 4)
    torch.testing.assert_close(front[:, :3, 3], torch.tensor([[0.0, 0.0, camera.radius]] * 3), atol=1e-5, rtol=0)


def test_tiny_fid_pipeline_with_cache(tiny_g, tmp_path: Path) -> None:
    """End to end on the tiny preset: cached pretrained stats, FID_pre of a perturbed copy."""
    import copy

    extractor, camera, n = StandInFeatures(dim=4), CameraConfig(), 6
    cache = StatsCache(tmp_path)

    def stats_of(G) -> FidStats:
        key = StatsKey(generator=fid.generator_fingerprint(G), extractor=extractor.name, n=n, seed=0,
                       role="pretrained", camera=camera, batch_size=3, noise_mode="random")
        return cache.get_or_compute(key, lambda: fid.generator_stats(
            G, n, seed=0, role="pretrained", camera=camera, extractors=[extractor], batch_size=3,
            render=_render(camera))[extractor.name])

    pre = stats_of(tiny_g)
    assert stats_of(tiny_g).mu.tolist() == pre.mu.tolist() and len(list(tmp_path.iterdir())) == 1
    unlearned = copy.deepcopy(tiny_g)
    with torch.no_grad():
        for p in unlearned.backbone.synthesis.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.5)
    assert fid.generator_fingerprint(unlearned) != fid.generator_fingerprint(tiny_g)
    unl = stats_of(unlearned)
    assert len(list(tmp_path.iterdir())) == 2
    assert fid.fid_pre(pre, pre) == pytest.approx(0.0, abs=1e-9)
    assert math.isfinite(fid.fid_pre(pre, unl)) and fid.fid_pre(pre, unl) > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_generator_features_on_cuda_are_seeded(tiny_g) -> None:
    G = tiny_g.to("cuda")
    try:
        kwargs = {"seed": 5, "camera": CameraConfig(), "extractors": [StandInFeatures().to("cuda")],
                  "batch_size": 2, "device": "cuda", "role": "pretrained",
                  "render": _render(CameraConfig())}
        a, b = fid.generator_features(G, 4, **kwargs), fid.generator_features(G, 4, **kwargs)
        np.testing.assert_array_equal(a["stand-in:random-cnn-features-32"], b["stand-in:random-cnn-features-32"])
        assert np.isfinite(a["stand-in:random-cnn-features-32"]).all()
    finally:
        tiny_g.to("cpu")


def test_fid_pre_pairs_latents_but_not_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    """GUIDE's pairing: same z and yaw for both generators, independent noise / depth draws per generator."""
    from guide_ray.models.eg3d.presets import build_generator

    G = build_generator("tiny", seed=0)
    seen: dict[str, list] = {"z": [], "c": [], "noise": []}
    mapping, synthesis = G.mapping, G.synthesis

    def spy_mapping(z, c, **kw):
        seen["z"].append(z.clone())
        return mapping(z, c, **kw)

    def spy_synthesis(ws, c, *, generator, **kw):
        seen["c"].append(c.clone())
        seen["noise"].append(generator.get_state())
        return synthesis(ws, c, generator=generator, **kw)

    monkeypatch.setattr(G, "mapping", spy_mapping)
    monkeypatch.setattr(G, "synthesis", spy_synthesis)
    kw = {"seed": 4, "camera": CameraConfig(), "extractors": [StandInFeatures()], "batch_size": 3,
          "render": _render(CameraConfig())}
    pre = fid.generator_features(G, 3, role="pretrained", **kw)["stand-in:random-cnn-features-32"]
    unl = fid.generator_features(G, 3, role="unlearned", **kw)["stand-in:random-cnn-features-32"]
    torch.testing.assert_close(seen["z"][0], seen["z"][1], rtol=0, atol=0)     # same latents
    torch.testing.assert_close(seen["c"][0], seen["c"][1], rtol=0, atol=0)     # same yaws
    assert not torch.equal(seen["noise"][0], seen["noise"][1])                 # own noise / depth stream
    assert np.abs(pre - unl).max() > 0              # same G, different draws: FID_pre has no artificial floor
