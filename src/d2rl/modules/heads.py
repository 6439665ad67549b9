"""Policy and value heads. Distributions are written out (not torch.distributions) to keep the
per-step cost of acting low on CPU; the maths is the usual categorical / diagonal Gaussian."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from d2rl.modules.mlp import orthogonal_init

_LOG_2PI = math.log(2 * math.pi)


class CategoricalHead(nn.Module):
    """Features ``[B, F]`` -> logits ``[B, A]``. Small init gain (0.01) as in the PPO baselines."""

    def __init__(self, in_dim: int, num_actions: int, gain: float = 0.01) -> None:
        super().__init__()
        self.linear = orthogonal_init(nn.Linear(in_dim, num_actions), gain)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.linear(features), dim=-1)

    @staticmethod
    def sample(log_probs: torch.Tensor) -> torch.Tensor:
        """Inverse-CDF sampling (cheaper than torch.multinomial for small batches on CPU)."""
        u = torch.rand((*log_probs.shape[:-1], 1), dtype=log_probs.dtype)
        idx = (log_probs.exp().cumsum(-1) < u).sum(-1)
        return idx.clamp_max(log_probs.shape[-1] - 1)

    @staticmethod
    def mode(log_probs: torch.Tensor) -> torch.Tensor:
        return log_probs.argmax(-1)

    @staticmethod
    def log_prob(log_probs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return log_probs.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def entropy(log_probs: torch.Tensor) -> torch.Tensor:
        return -(log_probs.exp() * log_probs).sum(-1)


class GaussianHead(nn.Module):
    """Features ``[B, F]`` -> (mean ``[B, D]``, log_std ``[B, D]``) with a state-independent log std."""

    def __init__(self, in_dim: int, action_dim: int, gain: float = 0.01, init_log_std: float = 0.0) -> None:
        super().__init__()
        self.linear = orthogonal_init(nn.Linear(in_dim, action_dim), gain)
        self.log_std = nn.Parameter(torch.full((action_dim,), init_log_std))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.linear(features)
        return mean, self.log_std.expand_as(mean)

    @staticmethod
    def sample(params: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        mean, log_std = params
        return mean + log_std.exp() * torch.randn_like(mean)

    @staticmethod
    def mode(params: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return params[0]

    @staticmethod
    def log_prob(params: tuple[torch.Tensor, torch.Tensor], action: torch.Tensor) -> torch.Tensor:
        mean, log_std = params
        z = (action - mean) * (-log_std).exp()
        return (-0.5 * z.square() - log_std - 0.5 * _LOG_2PI).sum(-1)

    @staticmethod
    def entropy(params: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return (params[1] + 0.5 * (1.0 + _LOG_2PI)).sum(-1)


class ActorCritic(nn.Module):
    """Actor and critic encoders (``critic_encoder=None``: one encoder shared by both, computed
    once per call, as in the PPO baselines' Atari network), a policy head and a scalar value head."""

    def __init__(
        self, actor_encoder: nn.Module, critic_encoder: nn.Module | None, policy_head: nn.Module
    ) -> None:
        super().__init__()
        self.actor_encoder = actor_encoder
        self.critic_encoder = critic_encoder
        self.policy_head = policy_head
        out_dim: Any = (actor_encoder if critic_encoder is None else critic_encoder).out_dim
        self.value_head = orthogonal_init(nn.Linear(int(out_dim), 1), gain=1.0)

    def _features(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        actor = self.actor_encoder(obs)
        return actor, actor if self.critic_encoder is None else self.critic_encoder(obs)

    def dist_params(self, obs: torch.Tensor):  # type: ignore[no-untyped-def]
        return self.policy_head(self.actor_encoder(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, *obs]`` -> ``[B]``."""
        encoder = self.actor_encoder if self.critic_encoder is None else self.critic_encoder
        return self.value_head(encoder(obs)).squeeze(-1)

    def act(
        self, obs: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns action ``[B, ...]``, its log-prob ``[B]`` and the value ``[B]``."""
        actor, critic = self._features(obs)
        params = self.policy_head(actor)
        head: Any = self.policy_head
        action = head.mode(params) if deterministic else head.sample(params)
        return action, head.log_prob(params, action), self.value_head(critic).squeeze(-1)

    def evaluate(
        self, obs: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-prob ``[B]``, entropy ``[B]`` and value ``[B]`` of given actions under the current policy."""
        actor, critic = self._features(obs)
        params = self.policy_head(actor)
        head: Any = self.policy_head
        return head.log_prob(params, action), head.entropy(params), self.value_head(critic).squeeze(-1)
