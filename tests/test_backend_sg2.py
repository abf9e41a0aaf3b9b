"""GUIDE-SG2 through the backend seam (no Ray): the real Pipeline on `stylegan2-tiny` forgets and
keeps random samples; registry facts; `guide-ray weights --backend stylegan2-ffhq1024`."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from guide_ray.backends import get_backend
from guide_ray.config.backends import BACKEND_NAMES, backend_info
from guide_ray.config.guide import CameraConfig, GuideConfig
from guide_ray.config.job import JobSpec, WorkItem
from guide_ray.errors import ConfigError, WeightsMissing
from guide_ray.metrics import fid
from guide_ray.metrics.identity import id_similarity
from guide_ray.models import weights as zoo
from guide_ray.models.stylegan2.unlearnable import SYNTHESIS_MODULES, build_unlearnable
from guide_ray.pipeline import Pipeline
from guide_ray.utils.images import quantize_like_png

BACKEND = "stylegan2-tiny"


def _job(run: Path, **changes) -> JobSpec:
    return JobSpec.model_validate({
        "name": "sg2", "manifest": str(run / "m.parquet"), "output_dir": str(run), "device": "cpu",
        "metrics": ["ID", "ID_others", "FID_pre"], "fid": {"num_samples": 16, "batch_size": 8},
        "model": {"backend": BACKEND}, **changes})


def _item(**changes) -> WorkItem:
    base = dict(identity_id="random-3", scenario="random", backend=BACKEND, source="", seed=3, variant="guide",
                guide=GuideConfig(iterations=20, lr=1e-3), run_key="k")
    return WorkItem(**{**base, **changes})


def write_render(G, seed: int, path: Path) -> str:
    """A PNG of G's own render of identity `seed` (a 'photo' the tiny world can invert)."""
    backend = get_backend(BACKEND)
    w = backend.source_latent(G, seed, CameraConfig())
    image = quantize_like_png(backend.id_views(CameraConfig(), 1)(G, w))[0].permute(1, 2, 0).numpy()
    Image.fromarray(image).save(path)
    return str(path)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Pipeline:
    return Pipeline(_job(tmp_path_factory.mktemp("run")), "cpu")


def test_registry_facts() -> None:
    assert {"tiny", "eg3d-ffhq512-128", "stylegan2-tiny", "stylegan2-ffhq1024"} <= set(BACKEND_NAMES)
    sg2 = backend_info("stylegan2-ffhq1024")
    assert sg2.dims == "2d" and not sg2.stand_in and sg2.default_inversion == "psp"
    assert backend_info(BACKEND).stand_in and backend_info("eg3d-ffhq512-128").default_inversion == "goae"
    with pytest.raises(ConfigError, match="did you mean 'stylegan2-tiny'"):
        backend_info("stylegan2-tyni")
    with pytest.raises(ValueError, match="does not apply to backend 'stylegan2-tiny'"):
        _job(Path("/tmp"), model={"backend": BACKEND, "inversion": {"method": "goae"}})


def test_weights_of_the_2d_backends() -> None:
    assert zoo.needed_files(BACKEND, metrics=["ID", "FID_pre"], scenarios=["ffhq"]) == []
    got = zoo.needed_files("stylegan2-ffhq1024", metrics=["ID", "ID_others", "FID_pre", "delta_FID_real"],
                           scenarios=["random", "ffhq"])
    assert got == [zoo.PSP_FFHQ_ENCODE, zoo.IR_SE50, zoo.VGG16, zoo.CURRICULARFACE, zoo.PT_INCEPTION,
                   zoo.FFHQ_FEATS]                         # no GOAE: the pSp file holds the encoder


def test_weights_command_lists_the_psp_file(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "guide_ray.cli", "weights", str(tmp_path), "--backend",
                           "stylegan2-ffhq1024"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr                # nothing there: cannot run
    assert f"psp_ffhq_encode.pt: {zoo.PSP_FFHQ_ENCODE.url}" in proc.stdout
    assert "backend stylegan2-ffhq1024 cannot run" in proc.stdout and "psp_ffhq_encode.pt (missing)" in proc.stdout
    tiny = subprocess.run([sys.executable, "-m", "guide_ray.cli", "weights", str(tmp_path), "--backend", BACKEND],
                          capture_output=True, text=True, timeout=120)
    assert tiny.returncode == 0 and "needs no file" in tiny.stdout


def test_short_run_forgets_and_keeps_random_samples(pipeline: Pipeline, tmp_path: Path) -> None:
    """20 steps (lr 1e-3 to keep it short): the identity's ID falls below what it was (1.0) and below
    unrelated identities', FID_pre stays far below the distance to another generator."""
    outcome = pipeline.run(_item(), tmp_path / "a")
    assert outcome.stand_in and outcome.iterations == 20 and outcome.loss_last < outcome.loss_first
    G_s = pipeline.G_s
    # the artifact holds exactly the synthesis convolutions, and reloads into G_u
    state = torch.load(outcome.artifacts["weights"], weights_only=True)
    assert state and all(k.split(".")[0] in SYNTHESIS_MODULES for k in state)
    assert {k for k in G_s.decoder.state_dict() if k.split(".")[0] in SYNTHESIS_MODULES} == set(state)
    G_u = copy.deepcopy(G_s)
    G_u.decoder.load_state_dict(state, strict=False)
    backend, camera = pipeline.backend, CameraConfig()
    views = backend.id_views(camera, 11)
    w_u = backend.source_latent(G_s, 3, camera)
    assert id_similarity(G_s, G_s, w_u, pipeline.id_metric, views) == pytest.approx(1.0, abs=1e-5)   # before
    assert outcome.metrics["ID"] == pytest.approx(id_similarity(G_s, G_u, w_u, pipeline.id_metric, views), abs=1e-6)
    others = [id_similarity(G_s, G_u, backend.source_latent(G_s, s, camera), pipeline.id_metric, views)
              for s in (11, 12, 13)]
    assert outcome.metrics["ID"] < 0.99 and outcome.metrics["ID"] < min(others)
    # FID_pre: finite, and small next to the FID between G_s and a differently initialised generator
    fid_pre = outcome.metrics["FID_pre"]
    assert math.isfinite(fid_pre) and fid_pre >= 0
    extractor = next(iter(pipeline.extractors.values()))
    kw = {"n": 16, "seed": 0, "camera": camera, "extractors": [extractor], "render": backend.fid_render(camera),
          "batch_size": 8, "noise_mode": "random"}
    pre = fid.generator_stats(G_s, role="pretrained", **kw)[extractor.name]
    other = fid.generator_stats(build_unlearnable(BACKEND, seed=1), role="unlearned", **kw)[extractor.name]
    assert fid_pre < 0.1 * fid.fid_pre(pre, other)


def test_photo_identity_is_inverted_by_psp(pipeline: Pipeline, tmp_path: Path) -> None:
    """A photo (any size: pSp resizes to 256²) is inverted with the pSp encoder; ID_others over photos."""
    source = write_render(pipeline.G_s, 5, tmp_path / "src.png")
    other = write_render(pipeline.G_s, 6, tmp_path / "other.png")
    outcome = pipeline.run(_item(identity_id="photo-5", scenario="custom", source=source, other_images=(other,),
                                 guide=GuideConfig(iterations=2)), tmp_path / "b")
    assert all(np.isfinite(outcome.metrics[m]) for m in ("ID", "ID_others", "FID_pre"))
    image = pipeline.backend.load_photo(Path(source))
    assert image.shape == (1, 3, 256, 256) and -1 <= image.min() and image.max() <= 1
    w = pipeline.backend.inverter(pipeline.G_s, pipeline.nets, pipeline.job.model.inversion, tmp_path,
                                  pipeline.device, 5).invert(image)
    expected = pipeline.backend._psp.encoder(image) + pipeline.G_s.latent_avg     # pSp: E(x) + latent_avg
    torch.testing.assert_close(w, expected)


def test_the_real_backend_reads_generator_and_encoder_from_the_psp_file(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """stylegan2-ffhq1024's path through the seam: G_s = pSp's decoder + latent_avg from the file, photos
    inverted by that file's encoder (E(x) + latent_avg, every row). The file is written in the released
    format at the tiny size (a 1024² checkpoint is ~1 GB), so the loader is told the tiny preset."""
    from collections import OrderedDict

    from guide_ray.models.psp import load as psp_load
    from guide_ray.models.psp.encoder import GradualStyleEncoder
    from guide_ray.models.stylegan2.presets import TINY, build_generator

    torch.manual_seed(0)
    encoder = GradualStyleEncoder(50, "ir_se", n_styles=10, widths=TINY.encoder_widths).eval()
    decoder, _ = build_generator(BACKEND, seed=3)
    latent_avg = torch.randn(10, TINY.style_dim)
    state = OrderedDict([(f"encoder.{k}", v) for k, v in encoder.state_dict().items()] +
                        [(f"decoder.{k}", v) for k, v in decoder.state_dict().items()])
    opts = {"encoder_type": "GradualStyleEncoder", "input_nc": 3, "output_size": 64, "start_from_latent_avg": True,
            "learn_in_w": False}
    torch.save({"state_dict": state, "opts": opts, "latent_avg": latent_avg}, tmp_path / "psp_ffhq_encode.pt")
    real_load = psp_load.load_psp
    monkeypatch.setattr(psp_load, "load_psp", lambda path, **kw: real_load(path, preset=TINY, **kw))

    backend = get_backend("stylegan2-ffhq1024")
    G = backend.load_generator(tmp_path, torch.device("cpu"))
    assert torch.equal(G.latent_avg, latent_avg) and not G.training
    assert all(torch.equal(G.decoder.state_dict()[k], v) for k, v in decoder.state_dict().items())
    photo = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(photo)
    x = backend.load_photo(photo)
    spec = _job(tmp_path, model={"backend": "stylegan2-ffhq1024"}).model.inversion
    inverter = backend.inverter(G, None, spec, tmp_path, torch.device("cpu"), seed=0)
    assert inverter.name == "psp" and not inverter.stand_in
    with torch.no_grad():
        torch.testing.assert_close(inverter.invert(x), encoder(x) + latent_avg, atol=0, rtol=0)
    assert set(backend.unlearned_state(G)) == {k for k in decoder.state_dict() if k.split(".")[0] in SYNTHESIS_MODULES}
    (tmp_path / "psp_ffhq_encode.pt").unlink()
    with pytest.raises(WeightsMissing, match="psp_ffhq_encode.pt"):
        get_backend("stylegan2-ffhq1024").load_generator(tmp_path, torch.device("cpu"))
