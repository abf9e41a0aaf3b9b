"""GOAEncoder: the GOAE image → W+ encoder that GUIDE uses to invert a face photo.

Mirrors `jiangyzy/GOAE goae/training/goae.py:GOAEncoder` and `goae/models/attention.py:CrossAttention`
(GUIDE copies both into `goae/__init__.py`) name for name, so `encoder_FFHQ.pt` loads strictly.
The outputs are offsets from EG3D's `w_avg`: callers add it (see `guide_ray.guide.inversion`).

Deviations from upstream, none changing an eval-mode forward beyond float rounding:
* Only the inference path is built (upstream `stage == 3`, all heads on); the progressive
  training stages (`stage_list`, `set_stage`) only gate heads during GOAE's own training.
* `nn.MultiheadAttention` is replaced by `MultiheadCrossAttention`, same parameter names
  (`in_proj_weight`, `in_proj_bias`, `out_proj`), so that its attention dropout can draw from an
  explicit `torch.Generator`; all dropout masks do (see `swin.random_keep_mask`).
* The affine-free LayerNorm and the pools are functional calls (they hold no state).

Must not import: ray, guide_ray.config, file I/O.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from guide_ray.models.goae.swin import SwinFeatures, SwinTransformer, SwinV2Config, random_keep_mask

NUM_WS = 14          # W+ layers of EG3D's 256² tri-plane backbone
W_DIM = 512
DROPOUT = 0.1        # CrossAttention's (DETR default) dropout, active only in train mode
# How the 13 non-base W+ layers split between the three cross-attention heads (upstream constants).
NUM_COARSE, NUM_MID, NUM_FINE = 3, 3, 7


def dropout(x: Tensor, p: float, generator: torch.Generator | None, training: bool) -> Tensor:
    """Inverted dropout whose mask comes from `generator` (never the global RNG)."""
    if not training or p == 0.0:
        return x
    return x * random_keep_mask(tuple(x.shape), 1.0 - p, generator, x)


def get_mlp_layer(in_dim: int, out_dim: int, mlp_layer: int = 2) -> nn.Sequential:
    """(mlp_layer-1) x [Linear(in, in), LeakyReLU] then Linear(in, out); indices match upstream keys."""
    layers: list[nn.Module] = []
    for _ in range(mlp_layer - 1):
        layers += [nn.Linear(in_dim, in_dim), nn.LeakyReLU()]
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class MultiheadCrossAttention(nn.Module):
    """Batch-first multi-head attention with `nn.MultiheadAttention`'s parameters and numerics."""

    def __init__(self, embed_dim: int, num_heads: int, dropout_p: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout_p = dropout_p
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)   # torch's MultiheadAttention initialisation
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: Tensor) -> Tensor:
        """[B, N, E] → [B, heads, N, E/heads]."""
        B, N, E = x.shape
        return x.view(B, N, self.num_heads, E // self.num_heads).transpose(1, 2)

    def forward(self, query: Tensor, memory: Tensor, generator: torch.Generator | None) -> Tensor:
        """query: [B, Nq, E] attends to memory: [B, Nk, E] → [B, Nq, E]."""
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = self._heads(F.linear(query, w_q, b_q))
        k = self._heads(F.linear(memory, w_k, b_k))
        v = self._heads(F.linear(memory, w_v, b_v))
        scale = 1.0 / math.sqrt(q.shape[-1])
        attn = ((q * scale) @ k.transpose(-2, -1)).softmax(dim=-1)          # [B, heads, Nq, Nk]
        attn = dropout(attn, self.dropout_p, generator, self.training)
        out = (attn @ v).transpose(1, 2).reshape(query.shape)
        return self.out_proj(out)


class CrossAttention(nn.Module):
    """DETR-style decoder layer: attention residual → LayerNorm (no affine) → ReLU FFN residual."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout_p: float = DROPOUT) -> None:
        super().__init__()
        self.dropout_p = dropout_p
        self.multihead_attn = MultiheadCrossAttention(d_model, nhead, dropout_p)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)

    def forward(self, tgt: Tensor, memory: Tensor, generator: torch.Generator | None) -> Tensor:
        """tgt: [B, Nq, d] queries, memory: [B, Nk, d] keys/values → [B, Nq, d]."""
        p, train = self.dropout_p, self.training
        tgt = tgt + dropout(self.multihead_attn(tgt, memory, generator), p, generator, train)
        tgt = F.layer_norm(tgt, tgt.shape[-1:])   # upstream `norm2`; its `norm1` is never called
        ffn = self.linear2(dropout(F.relu(self.linear1(tgt)), p, generator, train))
        return tgt + dropout(ffn, p, generator, train)


def _pooled_code(spatial: nn.Sequential, channel: nn.Sequential, x: Tensor) -> Tensor:
    """GOAE's token-to-code head. x: [B, C, T] channels-first → [B, K, 512] (K = spatial outputs).

    The spatial MLP mixes the T tokens into K slots, a max-pool over tokens is added to every slot,
    and the channel MLP maps C → 512.
    """
    slots = spatial(x).transpose(1, 2)                    # [B, K, C]
    pooled = x.amax(dim=-1, keepdim=True).transpose(1, 2)  # [B, 1, C] (upstream AdaptiveMaxPool1d(1))
    return channel(slots + pooled)


class GOAEncoder(nn.Module):
    """Swin-V2 features → base code (all 14 layers) + coarse/mid/fine deltas via cross-attention."""

    def __init__(self, swin_config: SwinV2Config | None = None, mlp_layer: int = 2) -> None:
        super().__init__()
        self.swin_model = SwinTransformer(swin_config)
        # Sizes below are GOAE's, tied to a 256² input: the deepest Swin stage has 8x8 = 64 tokens
        # of 1024 channels; stages 2/1/0 have 16²/32²/64² tokens of 512/256/128 channels.
        self.mapper_base_spatial = get_mlp_layer(64, 1, mlp_layer)
        self.mapper_base_channel = get_mlp_layer(1024, W_DIM, mlp_layer)
        self.mapper_query_spatial_coarse = get_mlp_layer(64, NUM_COARSE, mlp_layer)
        self.mapper_query_channel_coarse = get_mlp_layer(1024, W_DIM, mlp_layer)
        self.mapper_query_spatial_mid = get_mlp_layer(64, NUM_MID, mlp_layer)
        self.mapper_query_channel_mid = get_mlp_layer(1024, W_DIM, mlp_layer)
        self.mapper_query_spatial_fine = get_mlp_layer(64, NUM_FINE, mlp_layer)
        self.mapper_query_channel_fine = get_mlp_layer(1024, W_DIM, mlp_layer)
        # Key/value pyramid: every level is lifted to 512 channels, and each finer level also
        # receives the coarser level upsampled along the token axis (256 → 1024 → 4096 tokens).
        self.mapper_coarse_channel = nn.Sequential(nn.Linear(512, W_DIM), nn.LeakyReLU())
        self.mapper_mid_channel = nn.Sequential(nn.Linear(256, W_DIM), nn.LeakyReLU())
        self.mapper_fine_channel = nn.Sequential(nn.Linear(128, 256), nn.LeakyReLU(),
                                                 nn.Linear(256, W_DIM), nn.LeakyReLU())
        self.mapper_coarse_to_mid_spatial = nn.Sequential(nn.Linear(256, 512), nn.LeakyReLU(),
                                                          nn.Linear(512, 1024), nn.LeakyReLU())
        self.mapper_mid_to_fine_spatial = nn.Sequential(nn.Linear(1024, 2048), nn.LeakyReLU(),
                                                        nn.Linear(2048, 4096), nn.LeakyReLU())
        self.cross_att_coarse = CrossAttention(W_DIM, 4, 2 * W_DIM)
        self.cross_att_mid = CrossAttention(W_DIM, 4, 2 * W_DIM)
        self.cross_att_fine = CrossAttention(W_DIM, 4, 2 * W_DIM)

    def _key_values(self, f: SwinFeatures) -> tuple[Tensor, Tensor, Tensor]:
        """Coarse [B, 256, 512], mid [B, 1024, 512], fine [B, 4096, 512] keys/values."""
        kv_coarse = self.mapper_coarse_channel(f.x_coarse)
        kv_mid = self.mapper_mid_channel(f.x_mid) + \
            self.mapper_coarse_to_mid_spatial(kv_coarse.transpose(1, 2)).transpose(1, 2)
        kv_fine = self.mapper_fine_channel(f.x_fine) + \
            self.mapper_mid_to_fine_spatial(kv_mid.transpose(1, 2)).transpose(1, 2)
        return kv_coarse, kv_mid, kv_fine

    def forward(self, x: Tensor, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """x: [B, 3, 256, 256] in [-1, 1] → (ws, ws_base), both [B, 14, 512] offsets from w_avg.

        ws_base is the base code repeated on every layer; ws adds the coarse (layers 1-3), mid (4-6)
        and fine (7-13) deltas. In train mode every DropPath/dropout mask is drawn from `generator`
        (required then, ignored in eval mode).
        """
        size = self.swin_model.cfg.img_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, size, size):
            raise ValueError(f"GOAEncoder expects [B, 3, {size}, {size}], got {list(x.shape)}")
        f = self.swin_model(x, generator)
        ws_base = _pooled_code(self.mapper_base_spatial, self.mapper_base_channel, f.x_base)  # [B, 1, 512]
        ws_base = ws_base.repeat(1, NUM_WS, 1)
        q_coarse = _pooled_code(self.mapper_query_spatial_coarse, self.mapper_query_channel_coarse, f.x_query)
        q_mid = _pooled_code(self.mapper_query_spatial_mid, self.mapper_query_channel_mid, f.x_query)
        q_fine = _pooled_code(self.mapper_query_spatial_fine, self.mapper_query_channel_fine, f.x_query)
        kv_coarse, kv_mid, kv_fine = self._key_values(f)
        ws_coarse = self.cross_att_coarse(q_coarse, kv_coarse, generator)   # [B, 3, 512]
        ws_mid = self.cross_att_mid(q_mid, kv_mid, generator)               # [B, 3, 512]
        ws_fine = self.cross_att_fine(q_fine, kv_fine, generator)           # [B, 7, 512]
        layer0 = ws_base.new_zeros(x.shape[0], 1, W_DIM)                    # layer 0: base code only
        ws = ws_base + torch.cat([layer0, ws_coarse, ws_mid, ws_fine], dim=1)
        return ws, ws_base
