"""pSp encoder mirror and the psp_ffhq_encode.pt loader: official layout, strict loading, clear refusals."""

from __future__ import annotations

import argparse
import json
import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from guide_ray.errors import WeightsInvalid, WeightsMissing
from guide_ray.models.psp.encoder import GradualStyleEncoder
from guide_ray.models.psp.load import load_psp, read_arch
from guide_ray.models.stylegan2.presets import FFHQ1024, TINY, build_generator
from guide_ray.models.weights import PSP_FFHQ_ENCODE


@pytest.fixture(scope="module")
def official(shared_dir: Path) -> dict:
    return json.loads((shared_dir / "fixtures/stylegan2psp/psp_ffhq_encode.keys.json").read_text())


def _layout(module: torch.nn.Module, prefix: str) -> list[list]:
    buffers = {name for name, _ in module.named_buffers()}
    return [[prefix + k, list(v.shape), "buffer" if k in buffers else "parameter", str(v.dtype).removeprefix("torch.")]
            for k, v in module.state_dict().items()]


def test_encoder_layout_equals_the_released_checkpoint(official: dict) -> None:
    ctor = official["constructor"]["encoder"]
    with torch.device("meta"):                                     # 267 M parameters, nothing allocated
        E = GradualStyleEncoder(*ctor["args"], n_styles=official["n_styles"], input_nc=ctor["opts_used"]["input_nc"])
    assert _layout(E, "encoder.") == official["encoder"]["state_dict"]
    assert sum(p.numel() for p in E.parameters()) == official["encoder"]["num_parameters"]
    assert sum(b.numel() for b in E.buffers()) == official["encoder"]["num_buffer_elements"]
    assert [h.spatial for h in E.styles] == ctor["style_block_spatial"]
    assert [len(h.convs) // 2 for h in E.styles] == ctor["style_block_num_convs"]
    codes = E(torch.empty(1, 3, 256, 256, device="meta"))
    assert list(codes.shape) == official["forward_output_shapes"]["encoder(x[1,3,256,256])"]
    assert official["num_state_dict_entries"] == len(E.state_dict()) + official["decoder"]["num_entries"]


def test_released_opts_give_the_ffhq_architecture(official: dict) -> None:
    arch = read_arch(official["opts"]["values"], Path("psp_ffhq_encode.pt"), FFHQ1024)
    relevant = official["opts"]["architecture_relevant"]
    assert arch.n_styles == relevant["n_styles"] == 18
    assert (arch.output_size, arch.learn_in_w, arch.input_nc) == (1024, False, 3)
    initial = {k: official["opts"]["values"][k] for k in official["opts"]["keys_in_initial_release_train_options"]}
    assert read_arch(initial, Path("x.pt"), FFHQ1024) == arch     # absent output_size/n_styles: pSp's defaults


# --- the loader, on a checkpoint written in the exact released format, at the tiny size -------------

def _tiny_psp():
    torch.manual_seed(0)
    encoder = GradualStyleEncoder(50, "ir_se", n_styles=10, widths=TINY.encoder_widths).eval()
    decoder, _ = build_generator("stylegan2-tiny")
    latent_avg = torch.randn(10, TINY.style_dim)                   # distinct rows: every row must be used
    return encoder, decoder, latent_avg


def _opts(**changes) -> dict:
    opts = {"encoder_type": "GradualStyleEncoder", "input_nc": 3, "label_nc": 0, "output_size": 64,
            "start_from_latent_avg": True, "learn_in_w": False, "n_styles": 10, "device": "cuda:0",
            "exp_dir": "/path/to/experiment", "checkpoint_path": None, "resize_factors": None}
    opts.update(changes)
    return opts


def _save(path: Path, encoder, decoder, latent_avg, opts, *, extra=None, drop=None) -> Path:
    state = OrderedDict([(f"encoder.{k}", v) for k, v in encoder.state_dict().items()] +
                        [(f"decoder.{k}", v) for k, v in decoder.state_dict().items()])
    state.update(extra or {})
    if drop:
        del state[drop]
    torch.save({"state_dict": state, "opts": opts, "latent_avg": latent_avg}, path)
    return path


@pytest.fixture(scope="module")
def tiny_psp():
    return _tiny_psp()


def test_loader_reads_the_format_and_inverts_with_every_latent_avg_row(tiny_psp, tmp_path: Path) -> None:
    encoder, decoder, latent_avg = tiny_psp
    path = _save(tmp_path / "psp_ffhq_encode.pt", encoder, decoder, latent_avg, _opts())
    psp = load_psp(path, preset=TINY)
    for ours, theirs in ((psp.encoder, encoder), (psp.decoder, decoder)):
        sd = ours.state_dict()
        assert list(sd) == list(theirs.state_dict())
        assert all(torch.equal(sd[k], v) for k, v in theirs.state_dict().items())
        assert not ours.training and not any(p.requires_grad for p in ours.parameters())
    assert torch.equal(psp.latent_avg, latent_avg)
    x = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        w = psp.invert(x)
        expected = encoder(x) + latent_avg
        image, _ = psp.decoder([w], input_is_latent=True, randomize_noise=False)
    assert w.shape == (2, 10, 64)
    torch.testing.assert_close(w, expected, atol=0, rtol=0)
    assert image.shape == (2, 3, 64, 64)


def test_namespace_opts_are_read_without_running_code(tiny_psp, tmp_path: Path) -> None:
    path = _save(tmp_path / "ns.pt", *tiny_psp, argparse.Namespace(**_opts()))
    assert load_psp(path, preset=TINY).arch.n_styles == 10


@pytest.mark.parametrize("case, message", [
    ({"drop": "decoder.convs.3.conv.weight"}, r"1 missing: decoder\.convs\.3\.conv\.weight"),
    ({"extra": {"encoder.styles.10.linear.weight": torch.zeros(64, 64)}}, r"1 unexpected: encoder\.styles\.10\.linear"),
    ({"extra": {"face_pool.weight": torch.zeros(1)}}, r"keys outside encoder\.\*/decoder\.\*: face_pool\.weight"),
    ({"extra": {"decoder.to_rgb1.bias": torch.zeros(1, 4, 1, 1)}},
     r"decoder\.to_rgb1\.bias \[1, 4, 1, 1\] != \[1, 3, 1, 1\]"),
])
def test_a_key_mismatch_is_refused_naming_the_key_and_file(tiny_psp, tmp_path: Path, case, message) -> None:
    path = _save(tmp_path / "bad.pt", *tiny_psp, _opts(), **case)
    with pytest.raises(WeightsInvalid, match=message) as err:
        load_psp(path, preset=TINY)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("opts, message", [
    (_opts(learn_in_w=True), "opts.learn_in_w"),
    (_opts(encoder_type="BackboneEncoderUsingLastLayerIntoW"), "opts.encoder_type"),
    ({k: v for k, v in _opts().items() if k not in ("output_size", "n_styles")}, "opts.output_size is 1024"),
    (_opts(n_styles=18), "opts.n_styles is 18"),
])
def test_unsupported_opts_are_refused_naming_the_field(tiny_psp, tmp_path: Path, opts, message) -> None:
    path = _save(tmp_path / "opts.pt", *tiny_psp, opts)
    with pytest.raises(WeightsInvalid, match=message):
        load_psp(path, preset=TINY)


def test_wrong_latent_avg_and_missing_top_level_keys(tiny_psp, tmp_path: Path) -> None:
    encoder, decoder, _ = tiny_psp
    path = _save(tmp_path / "avg.pt", encoder, decoder, torch.zeros(64), _opts())
    with pytest.raises(WeightsInvalid, match=r"'latent_avg' must be a \[10, 64\] tensor, got \[64\]"):
        load_psp(path, preset=TINY)
    torch.save({"state_dict": {}, "latent_avg": torch.zeros(10, 64)}, tmp_path / "noopts.pt")
    with pytest.raises(WeightsInvalid, match="top-level keys"):
        load_psp(tmp_path / "noopts.pt", preset=TINY)


def test_missing_file_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissing) as err:
        load_psp(tmp_path / "psp_ffhq_encode.pt")
    assert "psp_ffhq_encode.pt" in str(err.value) and PSP_FFHQ_ENCODE.url.split()[0] in str(err.value)


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_pickle_with_code_is_refused_and_not_run(tmp_path: Path, capsys) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "opts": _Exploit(), "latent_avg": torch.zeros(1)}, path)
    with pytest.raises(WeightsInvalid, match="not a readable weights-only pSp checkpoint"):
        load_psp(path)
    assert "pwned" not in capsys.readouterr().out
    (tmp_path / "junk.pt").write_bytes(pickle.dumps([1, 2], protocol=2) + b"garbage")
    with pytest.raises(WeightsInvalid, match="junk.pt"):
        load_psp(tmp_path / "junk.pt")


def test_tiny_psp_preset_is_seeded_and_inverts_into_its_generator() -> None:
    from guide_ray.models.psp import build_psp

    torch.manual_seed(5)
    state = torch.get_rng_state()
    a, b = build_psp("stylegan2-tiny"), build_psp("stylegan2-tiny")
    assert torch.equal(torch.get_rng_state(), state)               # the global RNG is not touched
    for x, y in ((a.encoder, b.encoder), (a.decoder, b.decoder)):
        assert all(torch.equal(u, v) for u, v in zip(x.state_dict().values(), y.state_dict().values()))
    assert not torch.equal(build_psp("stylegan2-tiny", seed=1).encoder.latlayer1.weight, a.encoder.latlayer1.weight)
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        w = a.invert(x)
        image, _ = a.decoder([w], input_is_latent=True, randomize_noise=False)
    assert w.shape == (1, 10, 64) and a.arch.n_styles == 10 and image.shape == (1, 3, 64, 64)
    torch.testing.assert_close(w, a.encoder(x) + a.latent_avg, atol=0, rtol=0)
