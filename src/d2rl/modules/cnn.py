"""Convolutional encoders for pixel observations: Nature CNN, IMPALA ResNet and a small ResNet.

All take channels-first images ``[B, C, H, W]`` of raw pixel values (uint8, or float in
``[0, 255]``) and divide by 255 themselves, so buffers can keep uint8 observations. Output:
features ``[B, out_dim]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import torch
from torch import nn
from torch.nn import functional as F

from d2rl.errors import D2RLError
from d2rl.modules.mlp import orthogonal_init
from d2rl.networks import ImpalaResNetConfig, NatureCNNConfig, ResNetConfig

NetT = TypeVar("NetT", "NatureCNN", "ImpalaResNet", "ResNet")


def scale_pixels(x: torch.Tensor) -> torch.Tensor:
    """uint8 or float pixels in [0, 255] -> float32 in [0, 1]."""
    return x.float() * (1.0 / 255.0)


def check_image_shape(obs_shape: tuple[int, ...], network: str) -> tuple[int, int, int]:
    if len(obs_shape) != 3:
        raise D2RLError(
            f"network={network} needs image observations [C, H, W], got shape {obs_shape}; use network=mlp"
        )
    c, h, w = obs_shape
    return c, h, w


def _flat_dim(body: nn.Module, obs_shape: tuple[int, int, int]) -> int:
    with torch.no_grad():
        return int(body(torch.zeros(1, *obs_shape)).flatten(1).shape[1])


class NatureCNN(nn.Module):
    """Mnih et al. 2015 (Nature), "Human-level control...": 32x8x8/4, 64x4x4/2, 64x3x3/1, fc 512."""

    def __init__(
        self, obs_shape: tuple[int, int, int], features: int = 512, channels_last: bool = False
    ) -> None:
        super().__init__()
        c = obs_shape[0]
        self.convs = nn.Sequential(
            orthogonal_init(nn.Conv2d(c, 32, 8, stride=4)),
            nn.ReLU(),
            orthogonal_init(nn.Conv2d(32, 64, 4, stride=2)),
            nn.ReLU(),
            orthogonal_init(nn.Conv2d(64, 64, 3, stride=1)),
            nn.ReLU(),
        )
        self.fc = orthogonal_init(nn.Linear(_flat_dim(self.convs, obs_shape), features))
        self.out_dim = features
        self.channels_last = channels_last

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = scale_pixels(obs)  # [B, C, H, W]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return F.relu(self.fc(self.convs(x).flatten(1)))


class ResidualBlock(nn.Module):
    """relu -> conv3x3 -> relu -> conv3x3, plus the input (IMPALA's pre-activation block)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(F.relu(self.conv0(F.relu(x))))


class ImpalaStack(nn.Module):
    """conv3x3 -> maxpool 3x3 stride 2 -> 2 residual blocks (Espeholt et al. 2018, fig. 3)."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.res0 = ResidualBlock(channels)
        self.res1 = ResidualBlock(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.conv(x), 3, stride=2, padding=1)
        return self.res1(self.res0(x))


class ImpalaResNet(nn.Module):
    """Espeholt et al. 2018 (IMPALA), the "large" network: stacks of 16-32-32 channels, fc 256.

    ``width`` multiplies the channels (Cobbe et al. 2020 use 16-32-32 on Procgen; width 2 or 4
    for their scaling experiments).
    """

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        channels: Sequence[int] = (16, 32, 32),
        width: int = 1,
        features: int = 256,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        stacks = []
        c = obs_shape[0]
        for ch in channels:
            stacks.append(ImpalaStack(c, ch * width))
            c = ch * width
        self.stacks = nn.Sequential(*stacks)
        self.fc = orthogonal_init(nn.Linear(_flat_dim(self.stacks, obs_shape), features))
        self.out_dim = features
        self.channels_last = channels_last

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = scale_pixels(obs)  # [B, C, H, W]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = F.relu(self.stacks(x)).flatten(1)
        return F.relu(self.fc(x))


class BasicBlock(nn.Module):
    """He et al. 2016 basic block (two conv3x3) with GroupNorm; a strided 1x1 conv on the skip."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.norm0 = nn.GroupNorm(1, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(1, channels)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.skip = nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm0(self.conv0(x)))
        return F.relu(self.skip(x) + self.norm1(self.conv1(y)))


class ResNet(nn.Module):
    """A small ResNet (He et al. 2016): a conv3x3 stem, one strided basic block per stage
    (each halves H and W), global average pooling, fc. GroupNorm rather than BatchNorm, so acting
    on one observation and training on a minibatch compute the same function."""

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        channels: Sequence[int] = (32, 64, 64),
        features: int = 256,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(obs_shape[0], channels[0], 3, stride=2, padding=1)
        blocks = []
        c = channels[0]
        for ch in channels:
            blocks.append(BasicBlock(c, ch, stride=2))
            c = ch
        self.blocks = nn.Sequential(*blocks)
        self.fc = orthogonal_init(nn.Linear(c, features))
        self.out_dim = features
        self.channels_last = channels_last

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = scale_pixels(obs)  # [B, C, H, W]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.blocks(F.relu(self.stem(x)))  # [B, C', H / 16, W / 16]
        return F.relu(self.fc(x.mean(dim=(2, 3))))


def _memory_format(net: NetT) -> NetT:
    """Conv weights in channels_last too when the input is (oneDNN then skips layout reorders)."""
    return net.to(memory_format=torch.channels_last) if net.channels_last else net  # type: ignore[call-overload]


def build_nature_cnn(cfg: NatureCNNConfig, obs_shape: tuple[int, ...]) -> NatureCNN:
    net = NatureCNN(check_image_shape(obs_shape, "nature_cnn"), int(cfg.features), bool(cfg.channels_last))
    return _memory_format(net)


def build_impala_resnet(cfg: ImpalaResNetConfig, obs_shape: tuple[int, ...]) -> ImpalaResNet:
    shape = check_image_shape(obs_shape, "impala_resnet")
    net = ImpalaResNet(shape, list(cfg.channels), int(cfg.width), int(cfg.features), bool(cfg.channels_last))
    return _memory_format(net)


def build_resnet(cfg: ResNetConfig, obs_shape: tuple[int, ...]) -> ResNet:
    shape = check_image_shape(obs_shape, "resnet")
    if min(shape[1:]) < 2 ** (len(cfg.channels) + 1):
        raise D2RLError(f"network=resnet: images {shape[1:]} are too small for {len(cfg.channels)} stages")
    return _memory_format(ResNet(shape, list(cfg.channels), int(cfg.features), bool(cfg.channels_last)))
