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


# -- options: attention blocks, self-attention, batch norm, random conv, spectral norm ----------

OPTIONS = [
    {"block": "se"},
    {"block": "cbam"},
    {"self_attention": True},
    {"batch_norm": True},
    {"random_conv": True},
    {"spectral_norm": True},
    {"block": "cbam", "self_attention": True, "batch_norm": True, "random_conv": True, "spectral_norm": True},
]
NETS = [
    (build_nature_cnn, NatureCNNConfig(features=32)),
    (build_impala_resnet, ImpalaResNetConfig(channels=[8, 16], features=32)),
    (build_resnet, ResNetConfig(channels=[8, 16], features=32)),
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "+".join(o))
@pytest.mark.parametrize(("build", "cfg"), NETS, ids=["nature_cnn", "impala_resnet", "resnet"])
def test_options_keep_shapes_take_uint8_train_every_parameter_and_are_deterministic(
    build, cfg, options, assert_gradients
) -> None:  # type: ignore[no-untyped-def]
    cfg = dataclasses.replace(cfg, **options)
    shape = (3, 64, 64)
    obs = torch.randint(0, 256, (4, *shape), dtype=torch.uint8)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        net = build(cfg, shape)
        outs.append(net(obs))
    assert outs[0].shape == (4, 32) and outs[0].dtype == torch.float32
    torch.testing.assert_close(outs[0], outs[1])  # same seed, same network and output
    assert_gradients(net, lambda: net(obs).square().sum())


def test_switched_off_options_leave_the_state_dict_keys_as_before() -> None:
    net = build_nature_cnn(NatureCNNConfig(), (4, 84, 84))
    keys = {f"convs.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")} | {"fc.weight", "fc.bias"}
    assert set(net.state_dict()) == keys
    impala = build_impala_resnet(ImpalaResNetConfig(channels=[8]), (3, 64, 64))
    assert not any("norm" in k or "attention" in k or "weight_orig" in k for k in impala.state_dict())


def test_batch_norm_normalises_before_the_activation_and_differs_in_eval_mode() -> None:
    torch.manual_seed(0)
    net = build_impala_resnet(ImpalaResNetConfig(channels=[8], features=16, batch_norm=True), (3, 16, 16))
    assert net.stacks[0].conv.bias is None  # the norm's shift replaces the conv bias
    obs = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    train_out = net(obs)  # minibatch statistics; moves the running averages
    net.eval()
    assert not torch.allclose(train_out, net(obs))  # running averages


def test_options_are_the_same_function_in_channels_last() -> None:
    torch.manual_seed(0)
    options = {"block": "cbam", "self_attention": True, "batch_norm": True, "spectral_norm": True}
    cfg = ImpalaResNetConfig(channels=[8, 16], features=32, **options)
    first = build_impala_resnet(dataclasses.replace(cfg, channels_last=False), (3, 32, 32))
    last = build_impala_resnet(dataclasses.replace(cfg, channels_last=True), (3, 32, 32))
    last.load_state_dict(first.state_dict())
    first.eval(), last.eval()
    obs = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    torch.testing.assert_close(last(obs), first(obs), rtol=1e-4, atol=1e-5)


def test_narrow_resnet_trains_with_one_thread() -> None:
    """Regression: channels_last GroupNorm backward with < 8 channels aborted the process (torch 2.13 CPU)."""
    import subprocess
    import sys

    code = (
        "import torch; torch.set_num_threads(1)\n"
        "from d2rl.modules.cnn import build_resnet\nfrom d2rl.networks import ResNetConfig\n"
        "net = build_resnet(ResNetConfig(channels=[4, 8, 8], features=16), (3, 64, 64))\n"
        "net(torch.randint(0, 255, (16, 3, 64, 64), dtype=torch.uint8)).sum().backward()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-500:]
