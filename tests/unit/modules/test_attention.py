"""Attention modules: SE/CBAM gates, SAGAN self-attention, multi-head attention, transformer encoder."""

from __future__ import annotations

import math

import pytest
import torch

from d2rl.modules.attention import (
    CBAM,
    ConvSelfAttention,
    MultiHeadAttention,
    SqueezeExcitation,
    TransformerEncoder,
    attention_block,
)


def test_squeeze_excitation_scales_each_channel_by_a_gate_from_its_mean() -> None:
    torch.manual_seed(0)
    se = SqueezeExcitation(16)
    x = torch.randn(2, 16, 5, 5)
    s = x.mean(dim=(2, 3))  # [B, C]
    w1, b1 = se.fc1.weight.flatten(1), se.fc1.bias
    w2, b2 = se.fc2.weight.flatten(1), se.fc2.bias
    gate = torch.sigmoid(torch.relu(s @ w1.T + b1) @ w2.T + b2)  # eq. 3 of Hu et al. by hand
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])


def test_cbam_gates_channels_then_positions_within_zero_and_one() -> None:
    torch.manual_seed(0)
    cbam = CBAM(8)
    x = torch.rand(2, 8, 6, 6) + 0.1  # positive, so the gates' effect is a ratio in (0, 1)
    ratio = cbam(x) / x
    assert ratio.shape == x.shape and bool(((ratio > 0) & (ratio < 1)).all())
    # channel gate * spatial gate: the ratio factorises into a [B, C] and a [B, H, W] part
    chan = ratio[:, :, :1, :1] / ratio[:, :1, :1, :1]
    torch.testing.assert_close(ratio / chan, ratio[:, :1].expand_as(ratio), rtol=1e-4, atol=1e-6)


def test_attention_block_names() -> None:
    assert isinstance(attention_block("se", 8), SqueezeExcitation)
    assert isinstance(attention_block("cbam", 8), CBAM)
    assert isinstance(attention_block("plain", 8), torch.nn.Identity)
    with pytest.raises(ValueError, match="unknown attention block"):
        attention_block("nope", 8)


def test_conv_self_attention_starts_as_identity_and_mixes_positions_once_gamma_moves() -> None:
    torch.manual_seed(0)
    sa = ConvSelfAttention(16)
    x = torch.randn(2, 16, 4, 4)
    torch.testing.assert_close(sa(x), x)
    with torch.no_grad():
        sa.gamma.fill_(1.0)
    y = sa(x)
    x2 = x.clone()
    x2[:, :, 0, 0] += 1.0  # one position changes: every position's output changes
    assert bool(((sa(x2) - y).abs().sum(1) > 0).all())


def test_multi_head_attention_matches_the_formula_by_hand() -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, heads=2)
    x, ctx = torch.randn(3, 4, 8), torch.randn(3, 5, 8)
    q = mha.q(x).view(3, 4, 2, 4)
    k, v = mha.kv(ctx).view(3, 5, 2, 2, 4).unbind(2)  # [B, T, H, d] each
    att = torch.softmax(torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(4), -1)
    o = torch.einsum("bhqk,bkhd->bqhd", att, v).reshape(3, 4, 8)
    torch.testing.assert_close(mha(x, ctx), mha.proj(o))
    # a -inf bias removes a key
    bias = torch.zeros(1, 1, 4, 5)
    bias[..., 0] = float("-inf")
    torch.testing.assert_close(mha(x, ctx, bias), mha(x, ctx[:, 1:]))


def test_transformer_encoder_is_permutation_equivariant(assert_gradients) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    enc = TransformerEncoder(16, heads=4, layers=2)
    x = torch.randn(2, 6, 16)
    perm = torch.randperm(6)
    torch.testing.assert_close(enc(x)[:, perm], enc(x[:, perm]), rtol=1e-5, atol=1e-5)
    assert_gradients(enc, lambda: enc(x).square().sum())
