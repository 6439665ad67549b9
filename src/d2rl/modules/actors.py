"""Policy networks for off-policy actor-critics: tanh-squashed Gaussian (SAC), deterministic
tanh (DDPG/TD3) and categorical (SAC-discrete). All act in the normalised box ``[-1, 1]^A``;
the policy rescales to the env's bounds. Plain constructor args, never a config object."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from d2rl.modules.ensemble import ACTIVATIONS

_LOG_2PI = math.log(2 * math.pi)
_LOG_2 = math.log(2.0)


class Trunk(nn.Module):
    """``[B, in]`` -> ``[B, out]`` MLP with an activation after every hidden layer, then a linear
    output layer (``nn.Linear`` init). Functional forward: cheaper than module calls on CPU."""

    def __init__(
        self, in_dim: int, hidden_sizes: Sequence[int], out_dim: int, activation: str = "relu"
    ) -> None:
        super().__init__()
        dims = [in_dim, *hidden_sizes, out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.act = ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act, last = self.act, len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = F.linear(x, layer.weight, layer.bias)  # type: ignore[arg-type]
            if i < last:
                x = act(x)
        return x


def squashed_gaussian_sample(
    mean: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``a = tanh(u)``, ``u ~ N(mean, std)``; returns ``a [B, A]`` and ``log pi(a) [B]``.

    Change of variables (Haarnoja et al. 2018, appendix C): ``log pi(a) = log N(u) - sum log(1 - tanh(u)^2)``,
    with ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))`` (exact and stable for large ``|u|``).
    """
    if noise is None:
        noise = torch.randn_like(mean)
    u = mean + log_std.exp() * noise
    log_normal = (-0.5 * noise.square() - log_std - 0.5 * _LOG_2PI).sum(-1)
    log_det = (2.0 * (_LOG_2 - u - F.softplus(-2.0 * u))).sum(-1)
    return torch.tanh(u), log_normal - log_det


class SquashedGaussianActor(nn.Module):
    """SAC policy: features ``[B, F]`` -> tanh-squashed diagonal Gaussian over ``[-1, 1]^A``."""

    def __init__(
        self,
        in_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int],
        activation: str = "relu",
        log_std_min: float = -20.0,
        log_std_max: float = 2.0,
    ) -> None:
        super().__init__()
        self.net = Trunk(in_dim, hidden_sizes, 2 * action_dim, activation)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(x).chunk(2, dim=-1)
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)

    def sample(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised action ``[B, A]`` and its log-prob ``[B]``."""
        return squashed_gaussian_sample(*self(x))

    def sample_action(self, x: torch.Tensor) -> torch.Tensor:
        """An action ``[B, A]`` as ``sample`` draws it (same noise), without the log-prob: for acting."""
        mean, log_std = self(x)
        return torch.tanh(mean + log_std.exp() * torch.randn_like(mean))

    def mode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self(x)[0])


class TrunkActor(nn.Module):
    """A policy whose output is a transform of one MLP trunk's: features ``[B, F]`` -> ``[B, out_dim]``."""

    def __init__(
        self, in_dim: int, out_dim: int, hidden_sizes: Sequence[int], activation: str = "relu"
    ) -> None:
        super().__init__()
        self.net = Trunk(in_dim, hidden_sizes, out_dim, activation)


class DeterministicActor(TrunkActor):
    """DDPG/TD3 policy: features ``[B, F]`` -> ``tanh(...)`` in ``[-1, 1]^A``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(x))


class CategoricalActor(TrunkActor):
    """SAC-discrete policy: features ``[B, F]`` -> log-probabilities ``[B, A]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.net(x), dim=-1)
