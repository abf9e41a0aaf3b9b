"""GOAE encoder mirror: official layout, deterministic buffers, forward contract, strict loading."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from guide_ray.errors import WeightsInvalid, WeightsMissing
from guide_ray.models.goae import GOAEncoder, SwinV2Config, load_goae_encoder
from guide_ray.models.goae.encoder import MultiheadCrossAttention
from guide_ray.models.goae.swin import DropPath, window_partition, window_reverse


@pytest.fixture(scope="module")
def official(shared_dir: Path) -> dict:
    return json.loads((shared_dir / "fixtures/goae/encoder_FFHQ.keys.json").read_text())


@pytest.fixture(scope="module")
def encoder() -> GOAEncoder:
    """Seeded upstream initialisation, with unit res-post-norms so every Swin block does something
    (upstream zero-initialises them, which would make the whole backbone an identity map)."""
    torch.manual_seed(0)
    encoder = GOAEncoder().eval()
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            if name.endswith(("norm1.weight", "norm2.weight")):
                p.fill_(1.0)
    return encoder


@pytest.fixture(scope="module")
def checkpoint(encoder: GOAEncoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our random-initialised encoder saved as the official file would be: a plain state_dict."""
    path = tmp_path_factory.mktemp("weights") / "encoder_FFHQ.pt"
    torch.save(encoder.state_dict(), path)
    return path


def test_state_dict_layout_equals_official(encoder: GOAEncoder, official: dict) -> None:
    params = {name for name, _ in encoder.named_parameters()}
    got = [[k, list(v.shape), "parameter" if k in params else "buffer"] for k, v in encoder.state_dict().items()]
    assert got == official["state_dict"]          # names, shapes, kinds and order
    assert len(got) == official["num_state_dict_entries"] == 545
    assert sum(p.numel() for p in encoder.parameters()) == official["num_parameters"] == 111_218_822
    assert sum(b.numel() for b in encoder.buffers()) == official["num_buffer_elements_in_state_dict"]


def test_computed_buffers_equal_official_digests(encoder: GOAEncoder, official: dict) -> None:
    state = encoder.state_dict()
    digests = official["buffer_value_digests"]
    assert len(digests) == 50
    for name, want in digests.items():
        value = state[name]
        assert str(value.dtype) == f"torch.{want['dtype']}", name
        assert value.double().sum().item() == pytest.approx(want["sum"], abs=1e-3), name
        assert hashlib.sha256(value.numpy().tobytes()).hexdigest() == want["sha256_le_bytes"], name


def test_swin_config_is_goae_swinv2_yaml(official: dict) -> None:
    cfg, theirs = SwinV2Config(), official["swin_config"]
    assert (cfg.img_size, cfg.patch_size, cfg.in_chans) == (
        theirs["DATA.IMG_SIZE"], theirs["MODEL.SWINV2.PATCH_SIZE"], theirs["MODEL.SWINV2.IN_CHANS"])
    assert cfg.embed_dim == theirs["MODEL.SWINV2.EMBED_DIM"]
    assert list(cfg.depths) == theirs["MODEL.SWINV2.DEPTHS"]
    assert list(cfg.num_heads) == theirs["MODEL.SWINV2.NUM_HEADS"]
    assert cfg.window_size == theirs["MODEL.SWINV2.WINDOW_SIZE"]
    assert list(cfg.pretrained_window_sizes) == theirs["MODEL.SWINV2.PRETRAINED_WINDOW_SIZES"]
    assert cfg.mlp_ratio == theirs["MODEL.SWINV2.MLP_RATIO"]
    assert cfg.drop_path_rate == theirs["MODEL.DROP_PATH_RATE"]
    assert theirs["MODEL.DROP_RATE"] == 0.0 and not theirs["MODEL.SWINV2.APE"]  # what we leave out
    assert official["constructor"]["mlp_layer"] == 2


# ws[:, [0, 1, 4, 7, 13], :3] for the `encoder` fixture and the input below, computed by the official
# GOAEncoder (KHU-AGI/GUIDE goae/__init__.py, timm layers stubbed) after loading this encoder's
# state_dict strictly; CPU, torch 2.14.1. Our forward matched it to 8.3e-7 (ws_base bit-identical).
OFFICIAL_WS_SLICE = torch.tensor([
    [[0.483831, 0.015575, -0.149080], [0.362773, -1.245407, 2.355987], [-0.331250, 1.428455, -0.436355],
     [-0.921833, 0.443357, -1.044239], [-1.033378, 0.576103, -1.021716]],
    [[0.530142, 0.009710, -0.081821], [0.429199, -1.159888, 2.269036], [-0.394885, 1.553788, -0.266301],
     [-0.867928, 0.510281, -0.806170], [-0.976219, 0.668838, -0.770240]],
])


def test_forward_contract(encoder: GOAEncoder, official: dict) -> None:
    x = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        ws, ws_base = encoder(x)
        ws_single, _ = encoder(x[1:])
    assert list(ws.shape[1:]) == official["forward_output_shapes"]["ws"][1:]
    assert list(ws_base.shape) == [2, 14, 512]
    assert torch.isfinite(ws).all()
    assert torch.equal(ws_base, ws_base[:, :1].expand(-1, 14, -1))   # one base code on all layers
    torch.testing.assert_close(ws[:, 0], ws_base[:, 0], rtol=0, atol=0)   # layer 0 has no delta
    assert (ws[:, 1:] - ws_base[:, 1:]).abs().amax(dim=-1).min() > 1e-3  # layers 1-13 do
    torch.testing.assert_close(ws_single, ws[1:], rtol=1e-4, atol=1e-4)  # no mixing across the batch
    assert not torch.allclose(ws[0], ws[1], atol=1e-3)
    torch.testing.assert_close(ws[:, [0, 1, 4, 7, 13], :3], OFFICIAL_WS_SLICE, rtol=0, atol=1e-4)


def test_forward_rejects_wrong_size(encoder: GOAEncoder) -> None:
    with pytest.raises(ValueError, match="256"):
        encoder(torch.zeros(1, 3, 128, 128))


def test_train_mode_needs_generator_and_is_seeded(encoder: GOAEncoder) -> None:
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(2)) * 2 - 1
    try:
        encoder.train()
        with torch.no_grad():
            with pytest.raises(ValueError, match="Generator"):
                encoder(x)
            a, a_base = encoder(x, generator=torch.Generator().manual_seed(5))
            b, _ = encoder(x, generator=torch.Generator().manual_seed(5))
            c, c_base = encoder(x, generator=torch.Generator().manual_seed(6))
    finally:
        encoder.eval()
    assert torch.equal(a, b)
    assert not torch.allclose(a, c, atol=1e-4)
    assert not torch.allclose(a_base, c_base, atol=1e-4)   # the base code sees only Swin's DropPath


def test_multihead_cross_attention_matches_torch() -> None:
    torch.manual_seed(3)
    ref = torch.nn.MultiheadAttention(512, 4, dropout=0.1, batch_first=True).eval()
    ours = MultiheadCrossAttention(512, 4, 0.1).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    q, kv = torch.randn(2, 7, 512), torch.randn(2, 300, 512)
    with torch.no_grad():
        torch.testing.assert_close(ours(q, kv, None), ref(q, kv, kv)[0], rtol=1e-5, atol=1e-5)


def test_drop_path_drops_whole_samples_and_rescales() -> None:
    layer = DropPath(0.25).train()
    x = torch.ones(4000, 3, 5)
    y = layer(x, torch.Generator().manual_seed(0))
    per_sample = y.flatten(1)
    assert torch.all(per_sample == per_sample[:, :1])                      # one draw per sample
    kept = per_sample[:, 0] != 0
    torch.testing.assert_close(per_sample[kept, 0], torch.full((int(kept.sum()),), 1 / 0.75))
    assert (~kept).float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert torch.equal(layer.eval()(x, None), x)


def test_window_partition_roundtrip() -> None:
    x = torch.randn(2, 32, 32, 5)
    windows = window_partition(x, 16)
    assert windows.shape == (8, 16, 16, 5)
    assert torch.equal(windows[1], x[0, :16, 16:])                         # row-major window order
    assert torch.equal(window_reverse(windows, 16, 32, 32), x)


def test_load_round_trip(encoder: GOAEncoder, checkpoint: Path) -> None:
    loaded = load_goae_encoder(checkpoint, device="cpu")
    assert not loaded.training
    want = encoder.state_dict()
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, want[name]), name


def test_missing_file_names_it_and_the_source(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissing, match="encoder_FFHQ.pt") as err:
        load_goae_encoder(tmp_path / "encoder_FFHQ.pt")
    assert "drive.google.com" in str(err.value) and "jiangyzy/GOAE" in str(err.value)


def test_missing_and_extra_keys_are_listed(encoder: GOAEncoder, tmp_path: Path) -> None:
    state = dict(encoder.state_dict())
    del state["cross_att_fine.linear2.bias"]
    state["swin_model.head.weight"] = torch.zeros(1000, 1024)
    path = tmp_path / "encoder_FFHQ.pt"
    torch.save(state, path)
    with pytest.raises(WeightsInvalid) as err:
        load_goae_encoder(path)
    message = str(err.value)
    assert "1 missing: cross_att_fine.linear2.bias" in message
    assert "1 unexpected: swin_model.head.weight" in message


def test_wrong_shape_and_non_state_dicts_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "encoder_FFHQ.pt"
    torch.save({"swin_model.norm.weight": torch.zeros(3)}, path)
    with pytest.raises(WeightsInvalid, match=r"swin_model.norm.weight \[3\] != \[1024\]"):
        load_goae_encoder(path)
    torch.save({"state_dict": {"a": torch.zeros(1)}, "epoch": 3}, path)   # no wrapped variant is official
    with pytest.raises(WeightsInvalid, match="not tensors"):
        load_goae_encoder(path)
    for junk in (b"not a torch file", b"junk", b""):
        path.write_bytes(junk)
        with pytest.raises(WeightsInvalid, match="not a readable weights-only torch file"):
            load_goae_encoder(path)


class _Payload:
    """Any non-tensor object: a weights-only load must refuse to rebuild it."""


def test_pickled_objects_are_refused_not_executed(tmp_path: Path) -> None:
    path = tmp_path / "encoder_FFHQ.pt"
    torch.save({"x": _Payload()}, path)
    with pytest.raises(WeightsInvalid, match="weights-only") as err:
        load_goae_encoder(path)
    assert "_Payload" in str(err.value)       # the refused global is named


def test_derived_buffers_from_another_layout_are_refused(encoder: GOAEncoder, tmp_path: Path) -> None:
    state = dict(encoder.state_dict())
    name = "swin_model.layers.0.blocks.1.attn_mask"
    state[name] = torch.zeros_like(state[name])       # same shape, no shift masking
    path = tmp_path / "encoder_FFHQ.pt"
    torch.save(state, path)
    with pytest.raises(WeightsInvalid, match=name):
        load_goae_encoder(path)
