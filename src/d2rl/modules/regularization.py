"""Switches that regularise any encoder: spectral norm, batch norm, and network randomization.

- ``apply_spectral_norm``: Miyato et al. 2018, "Spectral Normalization for GANs", on every conv and
  linear layer (one power iteration per training-mode forward; eval mode reuses the estimate).
- ``norm2d``: BatchNorm2d (Ioffe & Szegedy 2015) between a conv and its activation, or nothing.
  Training mode normalises with the minibatch statistics and updates running averages; eval mode
  uses the running averages. So acting in eval mode and learning in train mode compute different
  functions (a PPO ratio is not 1 on the first epoch); acting in train mode normalises each acting
  batch (num_envs observations) by itself and moves the running averages with acting data.
  Cobbe et al. 2019 (CoinRun) and Lee et al. 2020 used train-mode statistics throughout.
- ``RandomConv``: Lee et al. 2020, "Network Randomization: A Simple Technique for Generalization in
  Deep RL": a 3x3 conv with Glorot-normal weights and no bias on the (scaled) input, not trained,
  re-drawn every iteration, plus a feature-matching loss between clean and randomized features.

Hooks for a learner using ``random_conv``, once per iteration (rollout + update)::

    randomized = reset_random_convs(policy_net, clean_prob=...)   # new weights; maybe a clean iteration
    ... collect the rollout and update with the same weights ...
    loss = loss + 0.002 * feature_matching_loss(encoder, obs, features)  # beta of Lee et al.

and ``set_random_convs(net, False)`` to evaluate on clean observations. Lee et al.'s released code
(``random_ppo2.py``) acts and learns a whole iteration on clean observations with probability 0.9
(``real_thres=0.1``) and adds the feature-matching loss in every iteration; their paper evaluates
with the policy averaged over 10 random draws (Monte Carlo), which the caller can do by resetting
and acting repeatedly.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrizations


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Reparametrise the weight of every ``nn.Conv2d`` and ``nn.Linear`` in ``module`` (in place):
    ``W / sigma(W)``, with ``sigma`` estimated by power iteration (conv weights as
    ``[C_out, C_in * k * k]`` matrices, Miyato et al. 2018, appendix)."""
    layers = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for layer in layers:
        parametrizations.spectral_norm(layer)
    return module


def norm2d(batch_norm: bool, channels: int) -> nn.Module:
    """BatchNorm2d when switched on, else identity."""
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


class RandomConv(nn.Module):
    """A random, untrained ``channels -> channels`` conv on images in ``[0, 1]`` (Lee et al. 2020).

    The weights are a buffer (never trained); ``reset`` redraws them from a Glorot normal
    distribution, ``enabled = False`` (or eval mode) passes the input through unchanged. The conv mixes all input
    channels: RGB for Procgen; with stacked frames (Atari) it mixes frames too.
    """

    weight: torch.Tensor  # [C, C, k, k], a buffer

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.register_buffer("weight", torch.empty(channels, channels, kernel_size, kernel_size))
        self.padding = kernel_size // 2
        self.enabled = True
        self.reset()

    def reset(self, generator: torch.Generator | None = None) -> None:
        c, _, k, _ = self.weight.shape
        std = math.sqrt(2.0 / (c * k * k + c * k * k))  # Glorot normal: 2 / (fan_in + fan_out)
        with torch.no_grad():
            self.weight.normal_(0.0, std, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled or not self.training:  # eval mode (evaluation, d2rl-eval): clean inputs
            return x
        return F.conv2d(x, self.weight, padding=self.padding)  # [B, C, H, W]


def random_convs(module: nn.Module) -> list[RandomConv]:
    return [m for m in module.modules() if isinstance(m, RandomConv)]


def reset_random_convs(
    module: nn.Module, clean_prob: float = 0.0, generator: torch.Generator | None = None
) -> bool:
    """Redraw every ``RandomConv`` in ``module``; with probability ``clean_prob`` switch them off for
    this iteration. Returns whether the input is randomized (False also when there are none)."""
    convs = random_convs(module)
    if not convs:
        return False
    randomized = bool(torch.rand((), generator=generator) >= clean_prob)
    for conv in convs:
        conv.reset(generator)
        conv.enabled = randomized
    return randomized


def set_random_convs(module: nn.Module, enabled: bool) -> None:
    """Switch every ``RandomConv`` in ``module`` on or off (off: clean observations, e.g. to evaluate)."""
    for conv in random_convs(module):
        conv.enabled = enabled


def feature_matching_loss(
    encoder: nn.Module, obs: torch.Tensor, features: torch.Tensor | None = None
) -> torch.Tensor:
    """``mean ||f(random(obs)) - sg(f(obs))||^2`` over features (Lee et al. 2020, eq. 3).

    ``features``: the randomized features the learner already computed on ``obs`` with the current
    random weights (computed here when omitted). The clean features carry no gradient, as in the
    released code; the random convs' on/off state is restored afterwards.
    """
    convs = random_convs(encoder)
    if not convs:
        raise ValueError("feature_matching_loss needs an encoder built with random_conv=true")
    states = [c.enabled for c in convs]
    try:
        with torch.no_grad():
            set_random_convs(encoder, False)
            clean = encoder(obs)  # [B, F]
        if features is None:
            set_random_convs(encoder, True)
            features = encoder(obs)  # [B, F]
    finally:
        for conv, state in zip(convs, states, strict=True):
            conv.enabled = state
    return F.mse_loss(features, clean)
