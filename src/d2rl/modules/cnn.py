"""Convolutional encoders for pixel observations: Nature CNN, IMPALA ResNet and a small ResNet.

All take channels-first images ``[B, C, H, W]`` of raw pixel values (uint8, or float in
``[0, 255]``) and divide by 255 themselves, so buffers can keep uint8 observations. Output:
features ``[B, out_dim]``.

Switches (``ConvOptions`` in ``d2rl.networks``; all off by default, and off they leave the
network, its parameters and its state-dict keys as without them):
``block`` (SE or CBAM attention in every block, ``d2rl.modules.attention``), ``self_attention``
(SAGAN attention over the last feature map), ``batch_norm`` (before each activation),
``random_conv`` (Lee et al. 2020, on the input) and ``spectral_norm`` (every layer);
see ``d2rl.modules.regularization``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any, TypeVar

import torch
from torch import nn
from torch.nn import functional as F

from d2rl.errors import D2RLError
from d2rl.modules.attention import ConvSelfAttention, attention_block
from d2rl.modules.mlp import orthogonal_init
from d2rl.modules.regularization import RandomConv, apply_spectral_norm, norm2d
from d2rl.networks import ImpalaResNetConfig, NatureCNNConfig, ResNetConfig

__all__ = ["ImpalaResNetConfig", "NatureCNNConfig", "ResNetConfig"]  # re-exported for callers

NetT = TypeVar("NetT", bound=nn.Module)


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


def flat_dim(body: nn.Module, obs_shape: tuple[int, int, int]) -> int:
    """Width of ``body``'s flattened output (run in eval mode: batch-norm statistics stay untouched)."""
    training = body.training
    body.eval()
    with torch.no_grad():
        n = int(body(torch.zeros(1, *obs_shape)).flatten(1).shape[1])
    body.train(training)
    return n


def input_layer(random_conv: bool, channels: int) -> nn.Module:
    return RandomConv(channels) if random_conv else nn.Identity()


def self_attention_layer(self_attention: bool, channels: int) -> nn.Module:
    return ConvSelfAttention(channels) if self_attention else nn.Identity()


def _sequential(*layers: nn.Module) -> nn.Sequential:
    """``nn.Sequential`` without the identities (switched-off options keep the state-dict keys)."""
    return nn.Sequential(*(m for m in layers if not isinstance(m, nn.Identity)))


class PixelEncoder(nn.Module):
    """What the conv encoders share: scaled (optionally randomized) input, channels-last layout,
    and the head (optional self-attention over the last feature map, fc)."""

    randomize: nn.Module
    channels_last: bool

    def _init_head(
        self, channels: int, fc_in: int, features: int, self_attention: bool, channels_last: bool
    ) -> None:
        self.attend = self_attention_layer(self_attention, channels)
        self.fc = orthogonal_init(nn.Linear(fc_in, features))
        self.out_dim = features
        self.channels_last = channels_last

    def _input(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.randomize(scale_pixels(obs))  # [B, C, H, W]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


class NatureCNN(PixelEncoder):
    """Mnih et al. 2015 (Nature), "Human-level control...": 32x8x8/4, 64x4x4/2, 64x3x3/1, fc 512."""

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        features: int = 512,
        channels_last: bool = False,
        block: str = "plain",
        self_attention: bool = False,
        batch_norm: bool = False,
        random_conv: bool = False,
    ) -> None:
        super().__init__()
        c = obs_shape[0]
        self.randomize = input_layer(random_conv, c)
        layers: list[nn.Module] = []
        for out, k, s in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
            conv = orthogonal_init(nn.Conv2d(c, out, k, stride=s, bias=not batch_norm))
            layers += [conv, norm2d(batch_norm, out), nn.ReLU(), attention_block(block, out)]
            c = out
        self.convs = _sequential(*layers)
        self._init_head(c, flat_dim(self.convs, obs_shape), features, self_attention, channels_last)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self._input(obs)  # [B, C, H, W]
        return F.relu(self.fc(self.attend(self.convs(x)).flatten(1)))


class ResidualBlock(nn.Module):
    """relu -> conv3x3 -> relu -> conv3x3, plus the input (IMPALA's pre-activation block).

    Options: batch norm after each conv (before the next activation); SE/CBAM on the residual
    branch before the addition (as SE-ResNet, Hu et al. 2018, fig. 3).
    """

    def __init__(self, channels: int, block: str = "plain", batch_norm: bool = False) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm)
        self.norm0 = norm2d(batch_norm, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm)
        self.norm1 = norm2d(batch_norm, channels)
        self.attention = attention_block(block, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm0(self.conv0(F.relu(x)))
        return x + self.attention(self.norm1(self.conv1(F.relu(y))))


class ImpalaStack(nn.Module):
    """conv3x3 -> maxpool 3x3 stride 2 -> 2 residual blocks (Espeholt et al. 2018, fig. 3)."""

    def __init__(
        self, in_channels: int, channels: int, block: str = "plain", batch_norm: bool = False
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1, bias=not batch_norm)
        self.norm = norm2d(batch_norm, channels)
        self.res0 = ResidualBlock(channels, block, batch_norm)
        self.res1 = ResidualBlock(channels, block, batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.norm(self.conv(x)), 3, stride=2, padding=1)
        return self.res1(self.res0(x))


class ImpalaResNet(PixelEncoder):
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
        block: str = "plain",
        self_attention: bool = False,
        batch_norm: bool = False,
        random_conv: bool = False,
    ) -> None:
        super().__init__()
        self.randomize = input_layer(random_conv, obs_shape[0])
        stacks = []
        c = obs_shape[0]
        for ch in channels:
            stacks.append(ImpalaStack(c, ch * width, block, batch_norm))
            c = ch * width
        self.stacks = nn.Sequential(*stacks)
        self._init_head(c, flat_dim(self.stacks, obs_shape), features, self_attention, channels_last)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self._input(obs)  # [B, C, H, W]
        x = self.attend(F.relu(self.stacks(x))).flatten(1)
        return F.relu(self.fc(x))


class BasicBlock(nn.Module):
    """He et al. 2016 basic block (two conv3x3) with GroupNorm (BatchNorm with ``batch_norm``); a
    strided 1x1 conv on the skip; SE/CBAM on the residual branch before the addition."""

    def __init__(
        self, in_channels: int, channels: int, stride: int, block: str = "plain", batch_norm: bool = False
    ) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.norm0 = nn.BatchNorm2d(channels) if batch_norm else nn.GroupNorm(1, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(channels) if batch_norm else nn.GroupNorm(1, channels)
        self.attention = attention_block(block, channels)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.skip = nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm0(self.conv0(x)))
        return F.relu(self.skip(x) + self.attention(self.norm1(self.conv1(y))))


class ResNet(PixelEncoder):
    """A small ResNet (He et al. 2016): a conv3x3 stem, one strided basic block per stage
    (each halves H and W), global average pooling, fc. GroupNorm rather than BatchNorm, so acting
    on one observation and training on a minibatch compute the same function."""

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        channels: Sequence[int] = (32, 64, 64),
        features: int = 256,
        channels_last: bool = False,
        block: str = "plain",
        self_attention: bool = False,
        batch_norm: bool = False,
        random_conv: bool = False,
    ) -> None:
        super().__init__()
        self.randomize = input_layer(random_conv, obs_shape[0])
        self.stem = nn.Conv2d(obs_shape[0], channels[0], 3, stride=2, padding=1)
        blocks = []
        c = channels[0]
        for ch in channels:
            blocks.append(BasicBlock(c, ch, 2, block, batch_norm))
            c = ch
        self.blocks = nn.Sequential(*blocks)
        self._init_head(c, c, features, self_attention, channels_last)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self._input(obs)  # [B, C, H, W]
        x = self.attend(self.blocks(F.relu(self.stem(x))))  # [B, C', H / 16, W / 16]
        return F.relu(self.fc(x.mean(dim=(2, 3))))


# -- builders: the only code here that reads a config -----------------------------------------


def option(cfg: Any, key: str, default: Any) -> Any:
    """``cfg.key`` as a plain value (Enum -> its value); ``default`` when a config lacks the key."""
    value = getattr(cfg, key, default)
    return value.value if isinstance(value, Enum) else value


def conv_options(cfg: Any) -> dict[str, Any]:
    """The ``ConvOptions`` switches as constructor keyword arguments."""
    return {
        "block": str(option(cfg, "block", "plain")),
        "self_attention": bool(option(cfg, "self_attention", False)),
        "batch_norm": bool(option(cfg, "batch_norm", False)),
        "random_conv": bool(option(cfg, "random_conv", False)),
    }


def finish_encoder(net: NetT, cfg: Any) -> NetT:
    """Spectral norm when switched on; conv weights in channels_last when the input is (oneDNN then
    skips layout reorders)."""
    if option(cfg, "spectral_norm", False):
        apply_spectral_norm(net)
    if getattr(net, "channels_last", False):
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return net


def build_nature_cnn(cfg: NatureCNNConfig, obs_shape: tuple[int, ...]) -> NatureCNN:
    shape = check_image_shape(obs_shape, "nature_cnn")
    net = NatureCNN(shape, int(cfg.features), bool(cfg.channels_last), **conv_options(cfg))
    return finish_encoder(net, cfg)


def build_impala_resnet(cfg: ImpalaResNetConfig, obs_shape: tuple[int, ...]) -> ImpalaResNet:
    shape = check_image_shape(obs_shape, "impala_resnet")
    net = ImpalaResNet(
        shape,
        list(cfg.channels),
        int(cfg.width),
        int(cfg.features),
        bool(cfg.channels_last),
        **conv_options(cfg),
    )
    return finish_encoder(net, cfg)


def build_resnet(cfg: ResNetConfig, obs_shape: tuple[int, ...]) -> ResNet:
    shape = check_image_shape(obs_shape, "resnet")
    if min(shape[1:]) < 2 ** (len(cfg.channels) + 1):
        raise D2RLError(f"network=resnet: images {shape[1:]} are too small for {len(cfg.channels)} stages")
    # torch 2.13 on CPU: GroupNorm's channels_last backward with fewer than 8 channels corrupts the
    # heap (seen here: "double free or corruption" with 1 thread), so such narrow nets stay channels-first
    channels_last = bool(cfg.channels_last) and min(cfg.channels) >= 8
    net = ResNet(shape, list(cfg.channels), int(cfg.features), channels_last, **conv_options(cfg))
    return finish_encoder(net, cfg)
