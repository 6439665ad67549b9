"""Transformer network (conv positions or entities) and transformer core (a window over time)."""

from __future__ import annotations

import pytest
import torch

from d2rl.errors import D2RLError
from d2rl.modules.transformer import TransformerCore, build
from d2rl.networks import TransformerConfig


@pytest.mark.parametrize("shape", [(4, 84, 84), (3, 64, 64)], ids=["atari", "procgen"])
def test_pixels_take_uint8_and_train_every_parameter(shape, assert_gradients) -> None:  # type: ignore[no-untyped-def]
    cfg = TransformerConfig(dim=16, heads=2, layers=1, features=32)
    obs = torch.randint(0, 256, (2, *shape), dtype=torch.uint8)
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = build(cfg, shape)
        outs.append(net(obs))
    assert outs[0].shape == (2, 32) and outs[0].dtype == torch.float32
    torch.testing.assert_close(outs[0], outs[1])
    assert net.tokens(obs).shape[1] == {84: 81, 64: 36}[shape[1]]  # 9x9 or 6x6 positions
    assert_gradients(net, lambda: net(obs).square().sum())


@pytest.mark.parametrize("pool", ["max", "mean"])
def test_entities_are_a_set(pool, assert_gradients) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    net = build(TransformerConfig(dim=16, heads=4, layers=2, features=8, pool=pool), (5, 3))
    obs = torch.randn(4, 5, 3)  # [B, E, F]
    out = net(obs)
    assert out.shape == (4, 8)
    torch.testing.assert_close(net(obs[:, torch.randperm(5)]), out, rtol=1e-5, atol=1e-5)
    assert_gradients(net, lambda: net(obs).square().sum())


def test_shapes_it_cannot_take_are_user_errors() -> None:
    with pytest.raises(D2RLError, match=r"pixels \[C, H, W\] or entity features \[E, F\]"):
        build(TransformerConfig(), (8,))
    with pytest.raises(D2RLError, match="too small"):
        build(TransformerConfig(), (3, 10, 10))


def test_core_sees_only_its_memory_window() -> None:
    torch.manual_seed(0)
    core = TransformerCore(4, dim=8, heads=2, layers=1, memory_steps=2)
    x = torch.randn(6, 1, 4)
    out, _ = core(x, core.initial_state(1), torch.zeros(6, 1))
    x2 = x.clone()
    x2[1] += 1.0  # step 1 is in the window of steps 1..3 only (one layer, 2 past steps)
    out2, _ = core(x2, core.initial_state(1), torch.zeros(6, 1))
    changed = (out2 - out).abs().sum(-1).squeeze(1) > 1e-6
    assert changed.tolist() == [False, True, True, True, False, False]


def test_core_state_keeps_only_the_current_episode() -> None:
    torch.manual_seed(0)
    core = TransformerCore(4, dim=8, heads=2, layers=2, memory_steps=3)
    starts = torch.tensor([[0.0], [0.0], [1.0], [0.0]])
    _, (memory, valid) = core(torch.randn(4, 1, 4), core.initial_state(1), starts)
    assert memory.shape == (2, 1, 3, 8) and valid.tolist() == [[[0.0, 1.0, 1.0]]]
    assert not memory[:, :, 0].any()  # the step before the episode start is dropped
