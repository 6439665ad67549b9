"""Fixed-size on-policy rollout storage ``[T, N, ...]`` and generalised advantage estimation."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    dones: np.ndarray,
    last_values: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation (Schulman et al. 2016, eq. 16).

    ``rewards``, ``values``, ``dones``: ``[T, N]``; ``last_values``: ``[N]``, the value of the
    observation after the last step. ``dones[t]`` means the episode ended at step ``t``, so the
    value of the next observation (a fresh episode's) is not bootstrapped. A truncated episode
    is bootstrapped by adding ``gamma * V(final_obs)`` to its last reward before this is called.
    Returns (advantages, returns), both ``[T, N]``.
    """
    T = rewards.shape[0]
    advantages = np.zeros_like(rewards)
    not_done = 1.0 - dones.astype(rewards.dtype)
    next_values = np.concatenate([values[1:], last_values[None]], axis=0)
    deltas = rewards + gamma * next_values * not_done - values
    last = np.zeros_like(last_values)
    for t in reversed(range(T)):
        last = deltas[t] + gamma * gae_lambda * not_done[t] * last
        advantages[t] = last
    return advantages, advantages + values


class RolloutBuffer:
    """Preallocated tensors for ``num_steps`` steps of ``num_envs`` envs."""

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        action_dtype: torch.dtype,
        obs_dtype: torch.dtype = torch.float32,  # torch.uint8 for pixels: 4x less memory
    ) -> None:
        T, N = num_steps, num_envs
        self.num_steps, self.num_envs = T, N
        self.obs = torch.zeros((T, N, *obs_shape), dtype=obs_dtype)
        self.action = torch.zeros((T, N, *action_shape), dtype=action_dtype)
        self.logprob = torch.zeros((T, N))
        self.value = torch.zeros((T, N))
        self.reward = torch.zeros((T, N))
        self.done = torch.zeros((T, N), dtype=torch.bool)
        self.advantage = torch.zeros((T, N))
        self.ret = torch.zeros((T, N))

    def finish(self, last_values: torch.Tensor, gamma: float, gae_lambda: float) -> None:
        adv, ret = compute_gae(
            self.reward.numpy(), self.value.numpy(), self.done.numpy(), last_values.numpy(), gamma, gae_lambda
        )
        self.advantage.copy_(torch.from_numpy(adv))
        self.ret.copy_(torch.from_numpy(ret))

    def flat(self) -> dict[str, torch.Tensor]:
        """All fields flattened to ``[T * N, ...]``."""
        B = self.num_steps * self.num_envs
        return {
            "obs": self.obs.reshape(B, *self.obs.shape[2:]),
            "action": self.action.reshape(B, *self.action.shape[2:]),
            "logprob": self.logprob.reshape(B),
            "value": self.value.reshape(B),
            "advantage": self.advantage.reshape(B),
            "ret": self.ret.reshape(B),
        }


def minibatches(
    batch: dict[str, torch.Tensor], num_minibatches: int, generator: torch.Generator | None = None
) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch: a random permutation of the batch cut into ``num_minibatches`` parts."""
    size = next(iter(batch.values())).shape[0]
    mb = size // num_minibatches
    perm = torch.randperm(size, generator=generator)
    for i in range(num_minibatches):
        idx = perm[i * mb : (i + 1) * mb]
        yield {k: v[idx] for k, v in batch.items()}
