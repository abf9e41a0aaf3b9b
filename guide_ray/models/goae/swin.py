"""Swin-Transformer-V2 backbone of the GOAE encoder, written without timm.

GOAE's `encoder_FFHQ.pt` stores this backbone under `swin_model.*`. Module, parameter and buffer
names here equal the official ones (`jiangyzy/GOAE goae/models/swin_transformer.py`), so the file
loads with `strict=True`. Only what GOAE uses is built: square windows, no absolute position
embedding, no classification head, and the dropout rates of `swinv2.yaml` (all 0 except DropPath).

Deviations from upstream, all without effect on the numbers of an eval-mode forward:
* DropPath (stochastic depth) draws its masks from an explicit `torch.Generator` passed through
  `forward`, never from the global RNG; a train-mode forward without one is refused.
* The logit-scale cap is a Python constant, not a tensor created on `"cuda"` (GUIDE's copy hard-codes
  `device="cuda"` there), so the backbone runs on CPU and CUDA alike.
* The zero-rate dropouts, the unused `avgpool` and the `nn.Softmax` module (none has state) are omitted.

Must not import: ray, guide_ray.config, file I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOGIT_SCALE_MAX = math.log(1.0 / 0.01)  # Swin-V2 caps the cosine-attention temperature at 1/0.01
CPB_HIDDEN = 512                        # width of the continuous position-bias MLP
POSITION_BIAS_RANGE = 16.0              # bias = 16 * sigmoid(cpb_mlp(...)), Swin-V2's bounded bias
MASK_VALUE = -100.0                     # logit added between tokens of different shifted regions


@dataclass(frozen=True)
class SwinV2Config:
    """Backbone hyper-parameters; the defaults are GOAE's `swinv2.yaml` on top of its config defaults."""

    img_size: int = 256
    patch_size: int = 4
    in_chans: int = 3
    embed_dim: int = 128
    depths: tuple[int, ...] = (2, 2, 18, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    window_size: int = 16
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.2
    pretrained_window_sizes: tuple[int, ...] = (12, 12, 12, 6)


class SwinFeatures(NamedTuple):
    """The five feature maps GOAE's heads read, channel-last unless stated (B = batch)."""

    x_base: Tensor    # [B, 1024, 64]  final LayerNorm output, transposed to channels-first
    x_query: Tensor   # [B, 1024, 64]  input of stage 3, transposed to channels-first
    x_coarse: Tensor  # [B, 256, 512]  input of stage 2 (16x16 tokens)
    x_mid: Tensor     # [B, 1024, 256] input of stage 1 (32x32 tokens)
    x_fine: Tensor    # [B, 4096, 128] input of stage 0 (64x64 tokens)


def random_keep_mask(shape: tuple[int, ...], keep: float, generator: torch.Generator | None,
                     like: Tensor) -> Tensor:
    """Bernoulli(keep) mask scaled by 1/keep, drawn on the generator's device, cast to `like`.

    Drawing on the generator's device makes a seed give the same masks on CPU and CUDA. Raises
    ValueError without a generator: every stochastic draw in guide_ray must flow from a seed.
    """
    if generator is None:
        raise ValueError("a train-mode GOAE forward needs a torch.Generator for its dropout masks")
    mask = torch.empty(shape, device=generator.device).bernoulli_(keep, generator=generator)
    return mask.to(device=like.device, dtype=like.dtype) / keep


class DropPath(nn.Module):
    """Stochastic depth: drop a sample's whole residual branch with probability `drop_prob`."""

    def __init__(self, drop_prob: float) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # one draw per sample
        return x * random_keep_mask(shape, 1.0 - self.drop_prob, generator, x)


def window_partition(x: Tensor, window: int) -> Tensor:
    """[B, H, W, C] → [B * nW, window, window, C], windows in row-major order."""
    B, H, W, C = x.shape
    x = x.view(B, H // window, window, W // window, window, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, C)


def window_reverse(windows: Tensor, window: int, H: int, W: int) -> Tensor:
    """Inverse of `window_partition`: [B * nW, window, window, C] → [B, H, W, C]."""
    B = windows.shape[0] // ((H // window) * (W // window))
    x = windows.view(B, H // window, W // window, window, window, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, -1)


def relative_coords_table(window: int, pretrained_window: int) -> Tensor:
    """[1, 2w-1, 2w-1, 2] log-spaced relative offsets, the input of `cpb_mlp` (Swin-V2 eq. 4).

    Offsets are normalised by the *pre-training* window (12, or 6 in the last stage) so that the
    bias MLP sees the same coordinates it was trained on at a larger fine-tuning window.
    """
    span = pretrained_window if pretrained_window > 0 else window
    axis = torch.arange(-(window - 1), window, dtype=torch.float32)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1)[None]  # [1, 2w-1, 2w-1, 2]
    grid = grid / (span - 1) * 8  # [-8, 8] at the pre-training window
    return torch.sign(grid) * torch.log2(grid.abs() + 1.0) / math.log2(8)


def relative_position_index(window: int) -> Tensor:
    """[w*w, w*w] int64: row of the coords table holding the offset between tokens i and j."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"))
    coords = coords.flatten(1)                                          # [2, w*w]
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)        # [2, w*w, w*w], from 0
    return rel[0] * (2 * window - 1) + rel[1]


def shifted_window_mask(resolution: int, window: int, shift: int) -> Tensor:
    """[nW, w*w, w*w] float32: 0 within a region, -100 across regions that the cyclic shift joined."""
    band = torch.zeros(resolution)
    band[resolution - window:] = 1    # rows/cols that stay inside the last window
    band[resolution - shift:] = 2     # rows/cols that wrapped round from the other side
    region = band[:, None] * 3 + band[None, :]                          # [H, W] region label
    labels = window_partition(region[None, :, :, None], window).view(-1, window * window)
    diff = labels[:, None, :] - labels[:, :, None]                      # [nW, N, N]
    return torch.zeros_like(diff).masked_fill(diff != 0, MASK_VALUE)


class WindowAttention(nn.Module):
    """Swin-V2 window attention: scaled cosine attention plus a continuous position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int, pretrained_window_size: int) -> None:
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(num_heads, 1, 1)))
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("relative_coords_table", relative_coords_table(window_size, pretrained_window_size))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, CPB_HIDDEN), nn.ReLU(inplace=True),
                                     nn.Linear(CPB_HIDDEN, num_heads, bias=False))
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)

    def position_bias(self) -> Tensor:
        """[heads, N, N] bounded relative position bias, N = window²."""
        table = self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)  # [(2w-1)², heads]
        n = self.window_size ** 2
        bias = table[self.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1)
        return POSITION_BIAS_RANGE * torch.sigmoid(bias)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """x: [B*nW, N, C]; mask: [nW, N, N] or None → [B*nW, N, C]."""
        B_, N, C = x.shape
        qkv_bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))  # keys: no bias
        qkv = F.linear(x, self.qkv.weight, qkv_bias).reshape(B_, N, 3, self.num_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)                  # each [B*nW, heads, N, d]
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * torch.clamp(self.logit_scale, max=LOGIT_SCALE_MAX).exp()
        attn = attn + self.position_bias().unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            attn = attn.view(B_ // nW, nW, self.num_heads, N, N) + mask[None, :, None]
            attn = attn.view(-1, self.num_heads, N, N)
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(B_, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    """Token-wise feed-forward: fc1 → GELU → fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinTransformerBlock(nn.Module):
    """One (shifted-)window block with Swin-V2 res-post-norm: x + norm(f(x))."""

    def __init__(self, dim: int, input_resolution: int, num_heads: int, window_size: int,
                 shift_size: int, mlp_ratio: float, drop_path: float, pretrained_window_size: int) -> None:
        super().__init__()
        if input_resolution <= window_size:   # one window covers the map: no partition, no shift
            window_size, shift_size = input_resolution, 0
        self.input_resolution = input_resolution
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, pretrained_window_size)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        mask = shifted_window_mask(input_resolution, window_size, shift_size) if shift_size else None
        self.register_buffer("attn_mask", mask)

    def forward(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """x: [B, H*W, C] → [B, H*W, C]."""
        B, L, C = x.shape
        H = W = self.input_resolution
        if L != H * W:
            raise ValueError(f"expected {H * W} tokens, got {L}")
        s, w = self.shift_size, self.window_size
        grid = x.view(B, H, W, C)
        if s:
            grid = torch.roll(grid, shifts=(-s, -s), dims=(1, 2))
        windows = window_partition(grid, w).view(-1, w * w, C)
        windows = self.attn(windows, self.attn_mask)
        grid = window_reverse(windows.view(-1, w, w, C), w, H, W)
        if s:
            grid = torch.roll(grid, shifts=(s, s), dims=(1, 2))
        x = x + self.drop_path(self.norm1(grid.reshape(B, L, C)), generator)
        return x + self.drop_path(self.norm2(self.mlp(x)), generator)


class PatchMerging(nn.Module):
    """2x2 token merge: concat 4 neighbours (order x0, x1, x2, x3 as upstream) → Linear → LayerNorm."""

    def __init__(self, input_resolution: int, dim: int) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(2 * dim)

    def forward(self, x: Tensor) -> Tensor:
        """[B, H*W, C] → [B, H/2*W/2, 2C]."""
        B, _, C = x.shape
        H = W = self.input_resolution
        x = x.view(B, H, W, C)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.norm(self.reduction(x.view(B, -1, 4 * C)))


class BasicLayer(nn.Module):
    """One stage: `depth` blocks alternating plain and shifted windows, then optional patch merging."""

    def __init__(self, dim: int, input_resolution: int, depth: int, num_heads: int, window_size: int,
                 mlp_ratio: float, drop_path: list[float], downsample: bool, pretrained_window_size: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([
            SwinTransformerBlock(dim, input_resolution, num_heads, window_size,
                                 shift_size=0 if i % 2 == 0 else window_size // 2, mlp_ratio=mlp_ratio,
                                 drop_path=drop_path[i], pretrained_window_size=pretrained_window_size)
            for i in range(depth)])
        self.downsample = PatchMerging(input_resolution, dim) if downsample else None

    def forward(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        for blk in self.blocks:
            x = blk(x, generator)
        return x if self.downsample is None else self.downsample(x)


class PatchEmbed(nn.Module):
    """Non-overlapping patch×patch convolution to tokens, then LayerNorm."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.img_size = img_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        """[B, 3, H, W] → [B, (H/p)*(W/p), embed_dim]."""
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"expected {self.img_size}x{self.img_size} input, got {tuple(x.shape[-2:])}")
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class SwinTransformer(nn.Module):
    """The GOAE backbone; `forward` returns the multi-scale features instead of class logits."""

    def __init__(self, cfg: SwinV2Config | None = None) -> None:
        super().__init__()
        cfg = cfg or SwinV2Config()
        self.cfg = cfg
        n = len(cfg.depths)
        resolution = cfg.img_size // cfg.patch_size
        self.patch_embed = PatchEmbed(cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim)
        dpr = torch.linspace(0, cfg.drop_path_rate, sum(cfg.depths), device="cpu").tolist()  # linear decay rule
        self.layers = nn.ModuleList()
        for i in range(n):
            first = sum(cfg.depths[:i])
            self.layers.append(BasicLayer(
                dim=cfg.embed_dim * 2 ** i, input_resolution=resolution // 2 ** i, depth=cfg.depths[i],
                num_heads=cfg.num_heads[i], window_size=cfg.window_size, mlp_ratio=cfg.mlp_ratio,
                drop_path=dpr[first:first + cfg.depths[i]], downsample=i < n - 1,
                pretrained_window_size=cfg.pretrained_window_sizes[i]))
        self.norm = nn.LayerNorm(cfg.embed_dim * 2 ** (n - 1))
        self._init_weights()

    def _init_weights(self) -> None:
        """Upstream initialisation: trunc-normal(0.02) Linears, unit LayerNorms, zeroed res-post-norms."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for layer in self.layers:
            for blk in layer.blocks:   # each residual branch starts as the identity
                for norm in (blk.norm1, blk.norm2):
                    nn.init.zeros_(norm.weight)
                    nn.init.zeros_(norm.bias)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> SwinFeatures:
        """x: [B, 3, 256, 256] in [-1, 1] → the stage inputs and the final normed tokens."""
        x = self.patch_embed(x)
        stage_inputs = []
        for layer in self.layers:
            stage_inputs.append(x)
            x = layer(x, generator)
        x_fine, x_mid, x_coarse, x_query = stage_inputs
        return SwinFeatures(x_base=self.norm(x).transpose(1, 2), x_query=x_query.transpose(1, 2),
                            x_coarse=x_coarse, x_mid=x_mid, x_fine=x_fine)
