"""RND's pieces: the target and predictor networks, their observation normalisation, the
intrinsic-return normaliser and the two-value-head actor-critic (Burda et al. 2018)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from d2rl.modules.heads import ActorCritic
from d2rl.modules.mlp import orthogonal_init
from d2rl.modules.normalization import ObsNormalizer, RunningMeanStd

EXT, INT = 0, 1  # columns of the two-head value ``[B, 2]``: extrinsic V_E, intrinsic V_I


class TwoValueActorCritic(ActorCritic):
    """``ActorCritic`` whose value head has two outputs, ``[B, 2]``: column 0 is the extrinsic value
    V_E, column 1 the intrinsic value V_I (paper section 2.3: two heads on one trunk)."""

    def __init__(self, base: ActorCritic) -> None:
        super().__init__(base.actor_encoder, base.critic_encoder, base.policy_head)
        head: Any = self.value_head
        in_dim = int(head.in_features)
        self.value_head = orthogonal_init(nn.Linear(in_dim, 2), gain=1.0)


class RNDObs(nn.Module):
    """What the RND networks see: for stacked pixel frames only the newest frame (paper A.2),
    normalised by running per-element mean/std and clipped to ``[-clip, clip]``."""

    def __init__(self, obs_shape: tuple[int, ...], frame_channels: int | None, clip: float) -> None:
        super().__init__()
        self.frame_channels = frame_channels  # None: the whole observation
        shape = obs_shape if frame_channels is None else (frame_channels, *obs_shape[1:])
        self.shape = tuple(shape)
        self.norm = ObsNormalizer(self.shape, clip=clip)

    def select(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, *obs]`` -> ``[B, *shape]`` float32 (the newest frame of a stack)."""
        if self.frame_channels is not None:
            obs = obs[:, -self.frame_channels :]
        return obs.float()

    def update(self, obs: torch.Tensor, chunk: int = 4096) -> None:
        """Add ``[B, *obs]`` to the statistics (in chunks: the combined moments are the same)."""
        for i in range(0, obs.shape[0], chunk):
            self.norm.rms.update(self.select(obs[i : i + chunk]))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.norm(self.select(obs))


def _conv_trunk(channels: int) -> nn.Sequential:
    """The paper's RND convolutions (A.4): 8x8/4 32, 4x4/2 64, 3x3/1 64, leaky ReLU."""
    return nn.Sequential(
        orthogonal_init(nn.Conv2d(channels, 32, 8, 4)),
        nn.LeakyReLU(),
        orthogonal_init(nn.Conv2d(32, 64, 4, 2)),
        nn.LeakyReLU(),
        orthogonal_init(nn.Conv2d(64, 64, 3, 1)),
        nn.LeakyReLU(),
        nn.Flatten(),
    )


def _flat(trunk: nn.Module, shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return int(trunk(torch.zeros(1, *shape)).shape[1])


def rnd_networks(shape: tuple[int, ...], pixels: bool, hidden: int, out: int) -> tuple[nn.Module, nn.Module]:
    """(target, predictor) mapping ``[B, *shape]`` normalised input -> ``[B, out]`` embeddings.

    Pixels: the paper's convolutions; target = convs + linear, predictor = convs + two 512-wide
    ReLU layers + linear. Vectors: a ``hidden``-wide 2-layer MLP trunk (leaky ReLU), with the
    predictor again one hidden layer deeper than the target.
    """

    def trunk() -> nn.Module:
        if pixels:
            return _conv_trunk(shape[0])
        dim = math.prod(shape)
        return nn.Sequential(
            nn.Flatten(),
            orthogonal_init(nn.Linear(dim, hidden)),
            nn.LeakyReLU(),
            orthogonal_init(nn.Linear(hidden, hidden)),
            nn.LeakyReLU(),
        )

    t_trunk, p_trunk = trunk(), trunk()
    feat = _flat(t_trunk, shape)
    width = 512 if pixels else hidden
    target = nn.Sequential(t_trunk, orthogonal_init(nn.Linear(feat, out)))
    predictor = nn.Sequential(
        p_trunk,
        orthogonal_init(nn.Linear(feat, width)),
        nn.ReLU(),
        orthogonal_init(nn.Linear(width, width)),
        nn.ReLU(),
        orthogonal_init(nn.Linear(width, out)),
    )
    for p in target.parameters():
        p.requires_grad_(False)
    return target, predictor


def prediction_error(predictor: nn.Module, target: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``[B, *shape]`` normalised input -> ``[B]`` mean squared error over embedding features."""
    with torch.no_grad():
        goal = target(x)
    return F.mse_loss(predictor(x), goal, reduction="none").mean(-1)


class IntrinsicRewardNormalizer(nn.Module):
    """Divides intrinsic rewards by a running std of the intrinsic discounted return (paper 2.4).

    Per env, ``R <- gamma * R + r`` over the rollout in time order, never reset at episode ends (the
    intrinsic stream is non-episodic); the std of all the ``R`` seen so far scales the rewards of
    the rollout they came from (as ``RewardForwardFilter`` in the authors' code).
    """

    returns: torch.Tensor

    def __init__(self, num_envs: int, gamma: float, epsilon: float = 1e-8) -> None:
        super().__init__()
        self.rms = RunningMeanStd(())
        self.register_buffer("returns", torch.zeros(num_envs, dtype=torch.float64))
        self.gamma, self.epsilon = gamma, epsilon

    @property
    def std(self) -> float:
        return float((self.rms.var + self.epsilon).sqrt())

    @torch.no_grad()
    def forward(self, rewards: torch.Tensor) -> torch.Tensor:
        """``[T, N]`` raw intrinsic rewards -> ``[T, N]`` rewards / std(intrinsic returns)."""
        seen = []
        for r in rewards.to(torch.float64):
            self.returns.mul_(self.gamma).add_(r)
            seen.append(self.returns.clone())
        self.rms.update(torch.cat(seen))
        return (rewards / self.std).to(rewards.dtype)


def frame_channels(facts: Any, obs_shape: tuple[int, ...]) -> int | None:
    """Channels of the newest frame of a stacked pixel observation, else None (see ``EnvFacts``)."""
    if not facts.pixels or len(obs_shape) != 3:
        return None
    k = max(1, int(facts.frame_stack))
    return obs_shape[0] // k
