"""MobileNet encoders for pixels, sized for RL inputs (64x64 to 96x96), ``version`` v1, v2 or v3.

- v1: Howard et al. 2017, depthwise separable convs (dw3x3 -> pw1x1, each with ReLU).
- v2: Sandler et al. 2018, inverted residual blocks with linear bottlenecks (1x1 expand, ReLU6,
  dw3x3, ReLU6, 1x1 project without activation; skip when the shape is kept).
- v3: Howard et al. 2019, v2 blocks with SE (hard-sigmoid gates) and hard-swish, the first six
  blocks of MobileNetV3-Small.

Deviations from the ImageNet networks: fewer stages (the overall stride is 16, as for Nature CNN),
no final 1x1 expansion, and the last feature map is flattened into an fc layer instead of
average-pooled (pooling discards where things are, which RL policies need). No normalisation
unless ``batch_norm`` (the papers use BatchNorm after every conv; see
``d2rl.modules.regularization`` for what that means when acting).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from d2rl.errors import D2RLError
from d2rl.modules.attention import CBAM, SqueezeExcitation
from d2rl.modules.cnn import (
    PixelEncoder,
    check_image_shape,
    conv_options,
    finish_encoder,
    flat_dim,
    input_layer,
    option,
)
from d2rl.networks import MobileNetConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish}

# v1: (out_channels, stride) per depthwise separable block
V1 = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (256, 2)]
# v2: (expansion t, out_channels c, repeats n, first stride s), Sandler et al. table 2, first rows
V2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 2, 2)]
# v3: (kernel, expanded channels, out_channels, SE, activation, stride), MobileNetV3-Small table 2
V3 = [
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hswish", 2),
    (5, 240, 40, True, "hswish", 1),
    (5, 120, 48, True, "hswish", 1),
]


def make_divisible(channels: float, divisor: int = 8) -> int:
    """Round to a multiple of ``divisor``, never below 90% of ``channels`` (the papers' rule)."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


def conv_norm_act(
    in_ch: int, out_ch: int, k: int, stride: int, batch_norm: bool, act: str | None, groups: int = 1
) -> nn.Sequential:
    """conv -> [BatchNorm] -> [activation]."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, k, stride, k // 2, groups=groups, bias=not batch_norm)
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_ch))
    if act is not None:
        layers.append(ACTIVATIONS[act]())
    return nn.Sequential(*layers)


def block_attention(kind: str, channels: int, paper_se: bool) -> nn.Module:
    """``plain``: the version's own SE where the paper has it; ``se``/``cbam``: in every block."""
    if kind == "cbam":
        return CBAM(channels)
    if kind == "se" or paper_se:
        return SqueezeExcitation(channels, reduction=4, hard=True)
    return nn.Identity()


class DepthwiseSeparable(nn.Module):
    """v1 block: dw3x3 -> [BN] -> ReLU -> pw1x1 -> [BN] -> ReLU (Howard et al. 2017, fig. 3)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, batch_norm: bool, attention: str) -> None:
        super().__init__()
        self.depthwise = conv_norm_act(in_ch, in_ch, 3, stride, batch_norm, "relu", groups=in_ch)
        self.pointwise = conv_norm_act(in_ch, out_ch, 1, 1, batch_norm, "relu")
        self.attention = block_attention(attention, out_ch, paper_se=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(self.pointwise(self.depthwise(x)))


class InvertedResidual(nn.Module):
    """v2/v3 block: 1x1 expand -> dwKxK -> [SE] -> 1x1 linear projection, + input when shapes match."""

    def __init__(
        self,
        in_ch: int,
        expanded: int,
        out_ch: int,
        kernel: int,
        stride: int,
        act: str,
        batch_norm: bool,
        attention: nn.Module,
    ) -> None:
        super().__init__()
        self.expand = (
            conv_norm_act(in_ch, expanded, 1, 1, batch_norm, act) if expanded != in_ch else nn.Identity()
        )
        self.depthwise = conv_norm_act(expanded, expanded, kernel, stride, batch_norm, act, groups=expanded)
        self.attention = attention
        self.project = conv_norm_act(expanded, out_ch, 1, 1, batch_norm, None)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.attention(self.depthwise(self.expand(x))))
        return x + y if self.residual else y


def _v1(stem: int, width: float, batch_norm: bool, attention: str) -> tuple[list[nn.Module], int]:
    blocks: list[nn.Module] = []
    c = stem
    for out, s in V1:
        out = make_divisible(out * width)
        blocks.append(DepthwiseSeparable(c, out, s, batch_norm, attention))
        c = out
    return blocks, c


def _v2(stem: int, width: float, batch_norm: bool, attention: str) -> tuple[list[nn.Module], int]:
    blocks: list[nn.Module] = []
    c = stem
    for t, out, n, s in V2:
        out = make_divisible(out * width)
        for i in range(n):
            exp = c * t
            att = block_attention(attention, exp, paper_se=False)
            blocks.append(InvertedResidual(c, exp, out, 3, s if i == 0 else 1, "relu6", batch_norm, att))
            c = out
    return blocks, c


def _v3(stem: int, width: float, batch_norm: bool, attention: str) -> tuple[list[nn.Module], int]:
    blocks: list[nn.Module] = []
    c = stem
    for k, exp, out, se, act, s in V3:
        exp, out = make_divisible(exp * width), make_divisible(out * width)
        att = block_attention(attention, exp, paper_se=se)
        blocks.append(InvertedResidual(c, exp, out, k, s, act, batch_norm, att))
        c = out
    return blocks, c


VERSIONS = {"v1": (_v1, 32, "relu"), "v2": (_v2, 32, "relu6"), "v3": (_v3, 16, "hswish")}


class MobileNet(PixelEncoder):
    """stem conv3x3/2 -> the version's blocks -> [self-attention] -> flatten -> fc -> ReLU."""

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        version: str = "v2",
        width: float = 1.0,
        features: int = 256,
        channels_last: bool = False,
        block: str = "plain",
        self_attention: bool = False,
        batch_norm: bool = False,
        random_conv: bool = False,
    ) -> None:
        super().__init__()
        if version not in VERSIONS:
            raise ValueError(f"unknown MobileNet version '{version}'; choose from {', '.join(VERSIONS)}")
        make_blocks, stem_channels, stem_act = VERSIONS[version]
        stem = make_divisible(stem_channels * width)
        self.randomize = input_layer(random_conv, obs_shape[0])
        blocks, c = make_blocks(stem, width, batch_norm, block)
        self.body = nn.Sequential(conv_norm_act(obs_shape[0], stem, 3, 2, batch_norm, stem_act), *blocks)
        self._init_head(c, flat_dim(self.body, obs_shape), features, self_attention, channels_last)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self._input(obs)  # [B, C, H, W]
        x = self.attend(self.body(x))  # [B, C', H / 16, W / 16]
        return F.relu(self.fc(x.flatten(1)))


def build(cfg: MobileNetConfig | Any, obs_shape: tuple[int, ...]) -> MobileNet:
    shape = check_image_shape(obs_shape, "mobilenet")
    if min(shape[1:]) < 16:
        raise D2RLError(f"network=mobilenet: images {shape[1:]} are too small (at least 16x16)")
    net = MobileNet(
        shape,
        str(option(cfg, "version", "v2")),
        float(cfg.width),
        int(cfg.features),
        bool(cfg.channels_last),
        **conv_options(cfg),
    )
    return finish_encoder(net, cfg)
