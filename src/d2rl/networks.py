"""Built-in network families: config dataclasses and registry specs (no torch import here).

Implementations live in ``d2rl.modules`` and are imported when a network is built. Pixel
networks take channels-first images ``[C, H, W]`` of raw uint8 pixels and divide by 255 themselves.

Options shared by families are small dataclasses the configs extend: ``EncoderOptions`` (a
recurrent core after the encoder, spectral normalisation) for every family, ``ConvOptions``
(attention blocks, self-attention, batch norm, a random input convolution) for conv encoders.
Choices are Enums, so a wrong value fails when the config is composed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from d2rl.specs import NetworkSpec


class Core(str, Enum):
    """The recurrent core after the encoder; all share ``d2rl.modules.lstm.LSTMCore``'s interface."""

    none = "none"
    lstm = "lstm"  # Hochreiter & Schmidhuber 1997
    gru = "gru"  # Cho et al. 2014
    dnc = "dnc"  # Graves et al. 2016, Differentiable Neural Computer
    transformer = (
        "transformer"  # causal attention over the last steps (Dai et al. 2019; Parisotto et al. 2020)
    )


class Block(str, Enum):
    """Attention inside the conv blocks."""

    plain = "plain"
    se = "se"  # Hu et al. 2018, Squeeze-and-Excitation (channel attention)
    cbam = "cbam"  # Woo et al. 2018, CBAM (channel then spatial attention)


class MobileNetVersion(str, Enum):
    v1 = "v1"  # Howard et al. 2017: depthwise separable convs
    v2 = "v2"  # Sandler et al. 2018: inverted residuals, linear bottlenecks
    v3 = "v3"  # Howard et al. 2019: v2 + SE + hard-swish


class Pool(str, Enum):
    max = "max"  # feature-wise max over positions/entities (Zambaldi et al. 2019)
    mean = "mean"


@dataclass
class EncoderOptions:
    """Options every network family has.

    ``core`` is read by recurrent learners through ``d2rl.modules.recurrent.build_core(cfg, in_dim)``;
    the encoder builder itself ignores it (a learner without recurrence should refuse a core rather
    than ignore it). ``spectral_norm`` (Miyato et al. 2018) reparametrises
    every conv and linear weight of the encoder by its largest singular value (one power iteration
    per training-mode forward).
    """

    name: str = ""
    spectral_norm: bool = False
    core: Core = Core.none
    core_size: int = 256  # LSTM/GRU hidden units, DNC controller units, transformer width
    core_layers: int = 1
    dnc_memory_slots: int = 32  # N, memory rows
    dnc_word_size: int = 32  # W, memory row width
    dnc_read_heads: int = 4  # R
    transformer_memory_steps: int = 32  # past steps a transformer core attends to
    transformer_heads: int = 4


@dataclass
class ConvOptions(EncoderOptions):
    """Switches on conv encoders (see ``d2rl.modules.regularization`` for batch norm and random conv).

    ``batch_norm`` puts BatchNorm2d between each conv and its activation: in training mode it
    normalises with the minibatch's statistics and updates running averages, in eval mode it uses
    the running averages. Act in eval mode and learn in train mode, and the two compute different
    functions (a PPO ratio is not 1 on the first epoch); act in train mode and acting batches
    (num_envs observations) move the running averages.
    ``random_conv`` is Lee et al. 2020's network randomization: a random 3x3 conv on the input,
    re-drawn by the learner every iteration (``reset_random_convs``), with an optional
    feature-matching loss (``feature_matching_loss``).
    """

    block: Block = Block.plain
    self_attention: bool = False  # SAGAN/non-local attention over the last conv feature map
    batch_norm: bool = False
    random_conv: bool = False


@dataclass
class MLPConfig(EncoderOptions):
    name: str = "mlp"
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"


@dataclass
class IdentityConfig(EncoderOptions):
    name: str = "identity"


@dataclass
class NatureCNNConfig(ConvOptions):
    name: str = "nature_cnn"
    features: int = 512
    channels_last: bool = False  # measured here: mixed (forward equal or slower, fwd+bwd 0.8-1.7x)


@dataclass
class ImpalaResNetConfig(ConvOptions):
    name: str = "impala_resnet"
    channels: list[int] = field(default_factory=lambda: [16, 32, 32])
    width: int = 1  # channel multiplier
    features: int = 256
    channels_last: bool = True  # measured here: 1.3-1.9x faster forward and forward+backward


@dataclass
class ResNetConfig(ConvOptions):
    name: str = "resnet"
    channels: list[int] = field(default_factory=lambda: [32, 64, 64])
    features: int = 256
    channels_last: bool = True  # measured here: forward+backward equal or up to 1.5x faster


@dataclass
class MobileNetConfig(ConvOptions):
    name: str = "mobilenet"
    version: MobileNetVersion = MobileNetVersion.v2
    width: float = 1.0  # channel multiplier (the papers' alpha)
    features: int = 256
    channels_last: bool = False


@dataclass
class TransformerConfig(EncoderOptions):
    """Pixels: conv stem, then tokens = feature-map positions (+ x/y coordinates); vectors ``[E, F]``:
    tokens = entities. Pre-LayerNorm blocks, pooled over tokens, fc."""

    name: str = "transformer"
    dim: int = 64
    heads: int = 4
    layers: int = 2
    mlp_ratio: int = 2  # hidden units of each block's MLP = mlp_ratio * dim
    pool: Pool = Pool.max
    conv_channels: list[int] = field(default_factory=lambda: [32, 64])  # pixels: 8x8/4, 4x4/2, then 3x3/1
    features: int = 256
    batch_norm: bool = False  # in the pixel stem


def _spec(
    name: str, config_class: type, builder: str, accepts: tuple[str, ...], description: str
) -> NetworkSpec:
    return NetworkSpec(name, config_class, f"d2rl.modules.{builder}", accepts, description)


_VECTOR, _PIXELS = ("vector",), ("pixels",)
MLP = _spec("mlp", MLPConfig, "mlp:build", _VECTOR, "fully connected encoder")
IDENTITY = _spec(
    "identity",
    IdentityConfig,
    "mlp:build_identity",
    _VECTOR,
    "the observation itself, flattened (SAC/TD3/DDPG's default: their MLPs read raw states)",
)
NATURE_CNN = _spec(
    "nature_cnn",
    NatureCNNConfig,
    "cnn:build_nature_cnn",
    _PIXELS,
    "Mnih et al. 2015 Atari CNN (3 convs + fc 512); pixels [C, H, W], e.g. [4, 84, 84]",
)
IMPALA_RESNET = _spec(
    "impala_resnet",
    ImpalaResNetConfig,
    "cnn:build_impala_resnet",
    _PIXELS,
    "Espeholt et al. 2018 IMPALA ResNet (16-32-32, width option) + fc 256; e.g. [3, 64, 64]",
)
RESNET = _spec(
    "resnet",
    ResNetConfig,
    "cnn:build_resnet",
    _PIXELS,
    "small ResNet (He et al. 2016): strided basic blocks with GroupNorm, avg pool, fc 256",
)
MOBILENET = _spec(
    "mobilenet",
    MobileNetConfig,
    "mobilenet:build",
    _PIXELS,
    "MobileNet v1/v2/v3 blocks (Howard et al. 2017, Sandler et al. 2018, Howard et al. 2019) + fc 256",
)
TRANSFORMER = _spec(
    "transformer",
    TransformerConfig,
    "transformer:build",
    _VECTOR + _PIXELS,
    "transformer encoder (Vaswani et al. 2017) over conv positions or entities [E, F]",
)
