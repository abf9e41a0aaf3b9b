"""rosinality/pSp StyleGAN2 mirror: official layout, FIR kernels, seeded randomness, golden values."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from guide_ray.models.stylegan2.layers import Upsample, fused_leaky_relu
from guide_ray.models.stylegan2.model import Generator
from guide_ray.models.stylegan2.presets import build_generator

PREFIX = "decoder."


@pytest.fixture(scope="module")
def official(shared_dir: Path) -> dict:
    return json.loads((shared_dir / "fixtures/stylegan2psp/psp_ffhq_encode.keys.json").read_text())


@pytest.fixture(scope="module")
def tiny():
    return build_generator("stylegan2-tiny")


@pytest.fixture(scope="module")
def noisy(tiny):
    """The tiny preset with noise strengths 0.5: untrained ones are 0, which would hide the noise path."""
    G = copy.deepcopy(tiny[0])
    with torch.no_grad():
        for conv in [G.conv1, *G.convs]:
            conv.noise.weight.fill_(0.5)
    return G


def test_decoder_layout_equals_the_released_checkpoint(official: dict) -> None:
    with torch.device("meta"):                                     # 30 M parameters, nothing allocated
        G = Generator(*official["constructor"]["decoder"]["args"])
    buffers = {name for name, _ in G.named_buffers()}
    got = [[PREFIX + k, list(v.shape), "buffer" if k in buffers else "parameter", str(v.dtype).removeprefix("torch.")]
           for k, v in G.state_dict().items()]
    assert got == official["decoder"]["state_dict"]                # names, order, shapes, kinds, dtypes
    assert sum(p.numel() for p in G.parameters()) == official["decoder"]["num_parameters"]
    assert sum(b.numel() for b in G.buffers()) == official["decoder"]["num_buffer_elements"]
    assert (G.num_layers, G.n_latent) == (official["constructor"]["decoder"]["num_layers"],
                                          official["constructor"]["decoder"]["n_latent"])
    assert G.channels == {int(k): v for k, v in official["constructor"]["decoder"]["channels"].items()}
    assert [PREFIX + f"noises.{n}" for n in dict(G.noises.named_buffers())] == \
        official["decoder"]["noise_buffers"]["names"]
    image, _ = G([torch.empty(1, G.n_latent, G.style_dim, device="meta")], input_is_latent=True)
    assert list(image.shape) == official["forward_output_shapes"]["decoder image"]


def test_kernel_buffers_equal_the_recorded_values_and_digests(official: dict, tiny) -> None:
    G, _ = tiny                                                   # the kernel does not depend on the size
    digests = official["decoder"]["buffer_value_digests"]
    ours = {PREFIX + k: v for k, v in G.state_dict().items() if k.endswith("kernel")}
    assert len(ours) == 2 * (G.log_size - 2)                       # one blur per upsampling conv + ToRGB
    for name, kernel in ours.items():
        record = digests[name] if name in digests else digests[PREFIX + "convs.0.conv.blur.kernel"]
        assert kernel.tolist() == record["values"]
        assert hashlib.sha256(kernel.numpy().astype("<f4").tobytes()).hexdigest() == record["sha256_le_bytes"]
    assert len(digests) == 16 and all(name.endswith("kernel") for name in digests)


def test_fused_leaky_relu_and_upsample_semantics() -> None:
    x, b = torch.randn(2, 5, 3, 3), torch.randn(5)
    torch.testing.assert_close(fused_leaky_relu(x, b), F.leaky_relu(x + b.view(1, 5, 1, 1), 0.2) * math.sqrt(2))
    up = Upsample([1, 3, 3, 1])
    y = up(torch.ones(1, 1, 6, 6))
    assert y.shape == (1, 1, 12, 12)                               # exactly 2x, gain 4 keeps the level
    torch.testing.assert_close(y[..., 2:-2, 2:-2], torch.ones(1, 1, 8, 8))


def test_channels_table_must_cover_every_resolution() -> None:
    with pytest.raises(ValueError, match=r"resolution\(s\) \[32\]"):
        Generator(32, 16, 2, channels={4: 8, 8: 8, 16: 8})


def test_tiny_preset_is_seeded_and_untouched_by_the_global_rng(tiny) -> None:
    G, latent_avg = tiny
    torch.manual_seed(123)
    G2, latent_avg2 = build_generator("stylegan2-tiny")
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), G2.state_dict().values()))
    assert torch.equal(latent_avg, latent_avg2) and latent_avg.shape == (G.n_latent, G.style_dim) == (10, 64)
    assert torch.equal(latent_avg, latent_avg[:1].expand_as(latent_avg))      # one mean, every row
    G3, _ = build_generator("stylegan2-tiny", seed=1)
    assert not torch.equal(G3.conv1.conv.weight, G.conv1.conv.weight)
    with pytest.raises(KeyError, match="stylegan2-tiny"):
        build_generator("stylegan2-small")


# Pinned CPU values of the seeded tiny preset (noise strength 0.5, stored noise buffers),
# W+ = latent_avg + 0.5 (mapping(z) - latent_avg).
GOLDEN_CONST = torch.tensor([[4.362280, 1.715340, 2.813534], [3.353533, 4.012321, 0.897041],
                             [4.068022, 2.632018, 2.615973]])
GOLDEN_MAPPING = torch.tensor([-0.023162, 0.666668, -0.150446, -0.116235])


def _golden_inputs(G):
    z = torch.randn(2, G.style_dim, generator=torch.Generator().manual_seed(5))
    return z


def test_golden_slice_of_a_seeded_render(tiny, noisy) -> None:
    G, latent_avg = noisy, tiny[1]
    z = _golden_inputs(G)
    with torch.no_grad():
        w = G.get_latent(z)                                       # [2, 64]
        ws = latent_avg + 0.5 * (w[:, None] - latent_avg)         # [2, 10, 64]
        image, latents = G([ws], input_is_latent=True, randomize_noise=False, return_latents=True)
    assert image.shape == (2, 3, 64, 64) and torch.equal(latents, ws)
    torch.testing.assert_close(w[0, :4], GOLDEN_MAPPING, atol=1e-5, rtol=0)
    torch.testing.assert_close(image[1, 0, -3:, -3:], GOLDEN_CONST, atol=1e-4, rtol=1e-5)


def test_mapping_and_noise_are_deterministic_from_a_generator(noisy) -> None:
    G = noisy
    z = _golden_inputs(G)

    def render(seed: int):
        with torch.no_grad():
            return G([z], generator=torch.Generator().manual_seed(seed))[0]

    torch.testing.assert_close(G.get_latent(z), G.get_latent(z), atol=0, rtol=0)
    assert torch.equal(render(3), render(3))
    assert not torch.equal(render(3), render(4))                  # the per-call noise really is drawn
    with torch.no_grad():
        stored = G([z], randomize_noise=False)[0]
        explicit = G([z], noise=[getattr(G.noises, f"noise_{i}") for i in range(G.num_layers)])[0]
    assert torch.equal(stored, explicit)
    a = G.mean_latent(64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, G.mean_latent(64, generator=torch.Generator().manual_seed(0))) and a.shape == (1, 64)
    noises = G.make_noise(generator=torch.Generator().manual_seed(0))
    assert [n.shape[-1] for n in noises] == [4, 8, 8, 16, 16, 32, 32, 64, 64]


def test_style_mixing_and_truncation_keep_upstream_semantics(tiny) -> None:
    G, latent_avg = tiny
    z1, z2 = _golden_inputs(G)
    with torch.no_grad():
        _, mixed = G([z1[None], z2[None]], inject_index=3, return_latents=True, randomize_noise=False)
        w1, w2 = G.get_latent(z1[None]), G.get_latent(z2[None])
        assert torch.equal(mixed[0, :3], w1.expand(3, -1)) and torch.equal(mixed[0, 3:], w2.expand(7, -1))
        draws = [G([z1[None], z2[None]], return_latents=True, generator=torch.Generator().manual_seed(s))[1]
                 for s in (9, 9)]
        assert torch.equal(draws[0], draws[1])                    # the mixing index comes from the generator
        centre = latent_avg[:1]
        _, truncated = G([z1[None]], truncation=0.0, truncation_latent=centre, return_latents=True)
    assert torch.equal(truncated[0], centre.expand(G.n_latent, -1))
