"""Running mean/variance statistics (parallel Welford, Chan et al. 1979) kept as module buffers."""

from __future__ import annotations

import torch
from torch import nn


class RunningMeanStd(nn.Module):
    """Tracks mean and variance of a stream of batches; state lives in buffers (checkpointed)."""

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(epsilon, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.to(torch.float64)
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
        n = x.shape[0]
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        m2 = self.var * self.count + batch_var * n + delta.square() * self.count * n / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)


class ObsNormalizer(nn.Module):
    """``(obs - mean) / std`` clipped to ``[-clip, clip]``; updated only while training.

    Integer observations (uint8 pixels) are cast to float32 first, so the collector's uint8
    tensors and evaluation's float tensors give the same normalised input.
    """

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, epsilon: float = 1e-8) -> None:
        super().__init__()
        self.rms = RunningMeanStd(shape)
        self.clip = clip
        self.epsilon = epsilon

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if not obs.is_floating_point():
            obs = obs.to(torch.float32)
        mean = self.rms.mean.to(obs.dtype)
        std = (self.rms.var + self.epsilon).sqrt().to(obs.dtype)
        return ((obs - mean) / std).clamp(-self.clip, self.clip)


class ReturnScaler(nn.Module):
    """Reward scaling by the std of the discounted return (as in the PPO baselines' VecNormalize)."""

    returns: torch.Tensor

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, epsilon: float = 1e-8) -> None:
        super().__init__()
        self.rms = RunningMeanStd(())
        self.register_buffer("returns", torch.zeros(num_envs, dtype=torch.float64))
        self.gamma = gamma
        self.clip = clip
        self.epsilon = epsilon

    @torch.no_grad()
    def forward(self, reward: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """``reward``, ``done``: ``[N]``. Returns the scaled reward ``[N]``."""
        self.returns.mul_(self.gamma).add_(reward.to(torch.float64))
        self.rms.update(self.returns)
        self.returns.masked_fill_(done, 0.0)
        scale = (self.rms.var + self.epsilon).sqrt().to(reward.dtype)
        return (reward / scale).clamp(-self.clip, self.clip)
