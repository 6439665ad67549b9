"""Pixel encoders: output shapes for their documented inputs, uint8 scaling, gradients everywhere."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from d2rl.errors import D2RLError
from d2rl.modules.cnn import (
    ImpalaResNetConfig,
    NatureCNNConfig,
    ResNetConfig,
    build_impala_resnet,
    build_nature_cnn,
    build_resnet,
)

CASES = [
    (build_nature_cnn, NatureCNNConfig(), (4, 84, 84), 512),  # Atari
    (build_nature_cnn, NatureCNNConfig(features=256), (3, 96, 96), 256),  # CarRacing
    (build_impala_resnet, ImpalaResNetConfig(), (3, 64, 64), 256),  # Procgen
    (build_impala_resnet, ImpalaResNetConfig(width=2), (4, 84, 84), 256),
    (build_resnet, ResNetConfig(), (3, 64, 64), 256),
    (build_resnet, ResNetConfig(features=128), (4, 84, 84), 128),
]


@pytest.mark.parametrize(("build", "cfg", "shape", "out_dim"), CASES)
def test_output_shape_and_gradient_reaches_every_parameter(build, cfg, shape, out_dim) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    net = build(cfg, shape)
    obs = torch.randint(0, 256, (5, *shape), dtype=torch.uint8)
    out = net(obs)
    assert out.shape == (5, out_dim) and net.out_dim == out_dim and out.dtype == torch.float32
    out.square().sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


@pytest.mark.parametrize(("build", "cfg", "shape", "out_dim"), CASES[::2])
def test_uint8_and_float_pixels_agree_and_channels_last_is_the_same_function(
    build, cfg, shape, out_dim
) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    first = build(dataclasses.replace(cfg, channels_last=False), shape)
    last = build(dataclasses.replace(cfg, channels_last=True), shape)
    last.load_state_dict(first.state_dict())
    obs = torch.randint(0, 256, (3, *shape), dtype=torch.uint8)
    torch.testing.assert_close(first(obs), first(obs.float()))
    torch.testing.assert_close(last(obs), first(obs), rtol=1e-4, atol=1e-5)
    # scaled by 255 inside: an all-255 image is not an all-1 image
    ones, full = torch.ones(1, *shape), torch.full((1, *shape), 255.0)
    assert not torch.allclose(first(ones), first(full))


def test_non_image_observations_are_a_user_error() -> None:
    with pytest.raises(D2RLError, match="image observations"):
        build_nature_cnn(NatureCNNConfig(), (4,))
    with pytest.raises(D2RLError, match="too small"):
        build_resnet(ResNetConfig(), (3, 8, 8))
