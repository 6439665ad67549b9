"""MobileNet v1/v2/v3 encoders: shapes at Atari and Procgen sizes, blocks per version, gradients."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from d2rl.errors import D2RLError
from d2rl.modules.attention import CBAM, SqueezeExcitation
from d2rl.modules.mobilenet import DepthwiseSeparable, InvertedResidual, build, make_divisible
from d2rl.networks import MobileNetConfig


@pytest.mark.parametrize("shape", [(4, 84, 84), (3, 64, 64)], ids=["atari", "procgen"])
@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_versions_take_uint8_and_train_every_parameter(version, shape, assert_gradients) -> None:  # type: ignore[no-untyped-def]
    cfg = MobileNetConfig(version=version, width=0.5, features=32)
    obs = torch.randint(0, 256, (2, *shape), dtype=torch.uint8)
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = build(cfg, shape)
        outs.append(net(obs))
    assert outs[0].shape == (2, 32) and outs[0].dtype == torch.float32 and net.out_dim == 32
    torch.testing.assert_close(outs[0], outs[1])
    assert_gradients(net, lambda: net(obs).square().sum())


def test_each_version_has_its_blocks() -> None:
    nets = {v: build(MobileNetConfig(version=v), (3, 64, 64)) for v in ("v1", "v2", "v3")}
    assert all(isinstance(m, DepthwiseSeparable) for m in list(nets["v1"].body)[1:])
    v2 = [m for m in nets["v2"].body if isinstance(m, InvertedResidual)]
    assert len(v2) == 8 and sum(m.residual for m in v2) == 4  # shape-keeping repeats get the skip
    assert not any(isinstance(m, SqueezeExcitation) for m in nets["v2"].modules())
    v3 = [m for m in nets["v3"].body if isinstance(m, InvertedResidual)]
    assert [isinstance(m.attention, SqueezeExcitation) for m in v3] == [True, False, False, True, True, True]
    assert any(isinstance(m, torch.nn.Hardswish) for m in nets["v3"].modules())


def test_block_option_puts_attention_in_every_block() -> None:
    net = build(MobileNetConfig(version="v2", block="cbam"), (3, 64, 64))
    blocks = [m for m in net.body if isinstance(m, InvertedResidual)]
    assert all(isinstance(m.attention, CBAM) for m in blocks)


def test_width_and_switches() -> None:
    assert make_divisible(16 * 0.5) == 8 and make_divisible(37) == 40 and make_divisible(3) == 8
    torch.manual_seed(0)
    cfg = MobileNetConfig(
        version="v3", batch_norm=True, random_conv=True, self_attention=True, spectral_norm=True
    )
    net = build(cfg, (3, 64, 64))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert net(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)).shape == (2, 256)
    with pytest.raises(D2RLError, match="too small"):
        build(MobileNetConfig(), (3, 8, 8))
    with pytest.raises(D2RLError, match="image observations"):
        build(dataclasses.replace(MobileNetConfig()), (8,))
