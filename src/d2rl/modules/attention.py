"""Attention modules: channel/spatial attention for conv blocks, self-attention, transformer blocks.

- ``SqueezeExcitation``: Hu et al. 2018, "Squeeze-and-Excitation Networks".
- ``CBAM``: Woo et al. 2018, "CBAM: Convolutional Block Attention Module".
- ``ConvSelfAttention``: Zhang et al. 2019 (SAGAN) / Wang et al. 2018 (non-local networks).
- ``MultiHeadAttention`` and ``TransformerBlock``: Vaswani et al. 2017, with the LayerNorm before
  each sublayer (Parisotto et al. 2020's identity-map reordering, which RL transformers need).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _squeeze_width(channels: int, reduction: int, minimum: int = 8) -> int:
    # Deviation: the papers use channels // 16; RL encoders have 16-64 channels, so keep >= 8 units.
    return max(minimum, channels // reduction)


class SqueezeExcitation(nn.Module):
    """Channel gates ``sigmoid(W2 relu(W1 mean_hw(x)))`` times ``x`` (Hu et al. 2018, eq. 2-4).

    ``hard=True`` is MobileNetV3's variant (hard-sigmoid gate, Howard et al. 2019).
    """

    def __init__(self, channels: int, reduction: int = 16, hard: bool = False) -> None:
        super().__init__()
        hidden = _squeeze_width(channels, reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = F.hardsigmoid if hard else torch.sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)  # [B, C, 1, 1]
        return x * self.gate(self.fc2(F.relu(self.fc1(s))))


class CBAM(nn.Module):
    """Channel attention from avg- and max-pooled descriptors through a shared MLP, then spatial
    attention from a 7x7 conv over the channel-wise avg and max maps (Woo et al. 2018, eq. 1-4)."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        hidden = _squeeze_width(channels, reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, channels, 1))
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean(dim=(2, 3), keepdim=True)  # [B, C, 1, 1]
        mx = x.amax(dim=(2, 3), keepdim=True)
        x = x * torch.sigmoid(self.mlp(avg) + self.mlp(mx))
        maps = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], 1)  # [B, 2, H, W]
        return x * torch.sigmoid(self.spatial(maps))


def attention_block(kind: str, channels: int) -> nn.Module:
    """``"plain"`` -> identity, ``"se"`` -> SqueezeExcitation, ``"cbam"`` -> CBAM."""
    blocks: dict[str, type[nn.Module]] = {"se": SqueezeExcitation, "cbam": CBAM}
    if kind == "plain":
        return nn.Identity()
    if kind not in blocks:
        raise ValueError(f"unknown attention block '{kind}'; choose from plain, {', '.join(blocks)}")
    return blocks[kind](channels)


class ConvSelfAttention(nn.Module):
    """Self-attention over the positions of a feature map, added back with a learned scale
    ``gamma`` that starts at 0 (SAGAN, Zhang et al. 2019, sec. 3): the block starts as identity.

    Queries and keys have ``C / 8`` channels, values ``C / 2`` projected back to ``C`` (as in SAGAN's
    released code).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        qk = max(1, channels // 8)
        v = max(1, channels // 2)
        self.query = nn.Conv2d(channels, qk, 1)
        self.key = nn.Conv2d(channels, qk, 1)
        self.value = nn.Conv2d(channels, v, 1)
        self.out = nn.Conv2d(v, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # [B, HW, C/8]
        k = self.key(x).flatten(2).transpose(1, 2)  # [B, HW, C/8]
        v = self.value(x).flatten(2).transpose(1, 2)  # [B, HW, C/2]
        # SAGAN's logits are unscaled dot products; scaling by 1/sqrt(d) keeps softmax soft at init.
        o = F.scaled_dot_product_attention(q, k, v)  # [B, HW, C/2]
        o = o.transpose(1, 2).reshape(b, -1, h, w)
        return x + self.gamma * self.out(o)


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention with ``heads`` heads (Vaswani et al. 2017, sec. 3.2).

    ``bias`` is an additive float mask broadcastable to ``[B, heads, T_q, T_k]`` (``-inf`` = not attended).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} must be divisible by heads={heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x`` ``[B, T_q, D]`` attends to ``context`` ``[B, T_k, D]`` -> ``[B, T_q, D]``."""
        b, tq, d = x.shape
        hd = d // self.heads
        q = self.q(x).view(b, tq, self.heads, hd).transpose(1, 2)  # [B, H, T_q, d]
        k, v = self.kv(context).view(b, -1, 2, self.heads, hd).permute(2, 0, 3, 1, 4)  # [B, H, T_k, d] each
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # [B, H, T_q, d]
        return self.proj(o.transpose(1, 2).reshape(b, tq, d))


class TransformerBlock(nn.Module):
    """``x + MHA(LN(x), LN(context))`` then ``x + MLP(LN(x))``: a pre-LN transformer layer."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.ReLU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x`` ``[B, T, D]``; ``context`` (default ``x``) ``[B, T_k, D]`` holds the keys/values."""
        h = self.norm1(x)
        kv = h if context is None else self.norm1(context)
        x = x + self.attn(h, kv, bias)
        return x + self.mlp(self.norm2(x))


class TransformerEncoder(nn.Module):
    """A stack of ``TransformerBlock`` s over a set of tokens ``[B, N, D] -> [B, N, D]``.

    Usable after any encoder that yields a set (conv positions, entities): the relational module
    of Zambaldi et al. 2019.
    """

    def __init__(self, dim: int, heads: int, layers: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.blocks:
            tokens = block(tokens, bias=bias)
        return self.norm(tokens)
