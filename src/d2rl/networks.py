"""Built-in network families: config dataclasses and registry specs (no torch import here).

Implementations live in ``d2rl.modules`` and are imported when a network is built. Pixel
networks take channels-first images ``[C, H, W]`` of raw uint8 pixels and divide by 255 themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from d2rl.specs import NetworkSpec


@dataclass
class MLPConfig:
    name: str = "mlp"
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"


@dataclass
class NatureCNNConfig:
    name: str = "nature_cnn"
    features: int = 512
    channels_last: bool = False  # measured here: mixed (forward equal or slower, fwd+bwd 0.8-1.7x)


@dataclass
class ImpalaResNetConfig:
    name: str = "impala_resnet"
    channels: list[int] = field(default_factory=lambda: [16, 32, 32])
    width: int = 1  # channel multiplier
    features: int = 256
    channels_last: bool = True  # measured here: 1.3-1.9x faster forward and forward+backward


@dataclass
class ResNetConfig:
    name: str = "resnet"
    channels: list[int] = field(default_factory=lambda: [32, 64, 64])
    features: int = 256
    channels_last: bool = True  # measured here: forward+backward equal or up to 1.5x faster


MLP = NetworkSpec(
    name="mlp",
    config_class=MLPConfig,
    builder="d2rl.modules.mlp:build",
    accepts=("vector",),
    description="fully connected encoder",
)
NATURE_CNN = NetworkSpec(
    name="nature_cnn",
    config_class=NatureCNNConfig,
    builder="d2rl.modules.cnn:build_nature_cnn",
    accepts=("pixels",),
    description="Mnih et al. 2015 Atari CNN (3 convs + fc 512); pixels [C, H, W], e.g. [4, 84, 84]",
)
IMPALA_RESNET = NetworkSpec(
    name="impala_resnet",
    config_class=ImpalaResNetConfig,
    builder="d2rl.modules.cnn:build_impala_resnet",
    accepts=("pixels",),
    description="Espeholt et al. 2018 IMPALA ResNet (16-32-32, width option) + fc 256; e.g. [3, 64, 64]",
)
RESNET = NetworkSpec(
    name="resnet",
    config_class=ResNetConfig,
    builder="d2rl.modules.cnn:build_resnet",
    accepts=("pixels",),
    description="small ResNet (He et al. 2016): strided basic blocks with GroupNorm, avg pool, fc 256",
)
