"""Fixed-size on-policy rollout storage ``[T, N, ...]`` and generalised advantage estimation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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


def to_sequences(
    batch: dict[str, torch.Tensor], states: tuple[torch.Tensor, ...], seq_len: int = 0
) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, ...]]:
    """Cut a rollout into sequences for recurrent updates (truncated BPTT over ``seq_len`` steps).

    ``batch`` fields ``[T, N, ...]``; ``states`` ``[T, N, K, ...]``: the recurrent state entering
    each step, as stored at acting time. ``seq_len`` (0: ``T``) must divide ``T``. Returns fields
    ``[L, S, ...]`` of ``S = N * T / L`` sequences (sequence ``c * N + n`` is steps ``c*L .. c*L+L-1``
    of env ``n``, in time order) and each sequence's initial state ``[S, K, ...]``.
    """
    T, N = next(iter(batch.values())).shape[:2]
    L = seq_len or T
    if T % L:
        raise ValueError(f"sequence length {L} must divide the rollout length {T}")
    C = T // L
    seqs = {
        k: v.reshape(C, L, N, *v.shape[2:]).transpose(0, 1).reshape(L, C * N, *v.shape[2:])
        for k, v in batch.items()
    }
    initial = tuple(s[::L].reshape(C * N, *s.shape[2:]) for s in states)
    return seqs, initial


def sequence_minibatches(
    seqs: dict[str, torch.Tensor],
    initial: tuple[torch.Tensor, ...],
    num_minibatches: int,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[dict[str, torch.Tensor], tuple[torch.Tensor, ...]]]:
    """One epoch over ``to_sequences``' output: a random permutation of whole sequences (never of
    single steps) cut into ``num_minibatches`` parts as equal as possible (one sequence each when
    there are fewer). Yields fields flattened time-major, ``[L * M, ...]`` (index ``t * M + m``),
    and the ``M`` sequences' initial states ``[K, M, ...]``."""
    L, S = next(iter(seqs.values())).shape[:2]
    perm = torch.randperm(S, generator=generator)
    for idx in torch.tensor_split(perm, min(num_minibatches, S)):
        m = idx.shape[0]
        fields = {k: v[:, idx].reshape(L * m, *v.shape[2:]) for k, v in seqs.items()}
        yield fields, tuple(s[idx].transpose(0, 1).contiguous() for s in initial)


class RolloutStorage:
    """On-policy storage: ``[T, N, ...]`` tensors for the standard fields (``obs``, ``action``,
    ``reward``, ``terminated``, ``truncated``, ``first``: the obs starts an episode) and the
    ``extras`` the algorithm declares (name -> (shape, dtype), e.g. ``logprob``, ``value``), plus
    the real final observations of episodes truncated inside the rollout (to bootstrap them)."""

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: torch.dtype,
        action_shape: tuple[int, ...],
        action_dtype: torch.dtype,
        extras: dict[str, tuple[tuple[int, ...], torch.dtype]] | None = None,
    ) -> None:
        T, N = num_steps, num_envs
        self.num_steps, self.num_envs = T, N
        fields: dict[str, tuple[tuple[int, ...], torch.dtype]] = {
            "obs": (obs_shape, obs_dtype),
            "action": (action_shape, action_dtype),
            "reward": ((), torch.float32),
            "terminated": ((), torch.bool),
            "truncated": ((), torch.bool),
            "first": ((), torch.bool),
            **(extras or {}),
        }
        self.data = {k: torch.zeros((T, N, *shape), dtype=dt) for k, (shape, dt) in fields.items()}
        self.arrays = {k: v.numpy() for k, v in self.data.items()}  # numpy views: ~1 us per write, not ~8
        self.final_obs: list[torch.Tensor] = []
        self.final_index: list[tuple[int, int]] = []

    def reset(self) -> None:
        self.final_obs, self.final_index = [], []

    def add_final(self, t: int, env: int, obs: torch.Tensor) -> None:
        """The real last observation of env ``env``'s episode, truncated at step ``t``."""
        self.final_obs.append(obs)
        self.final_index.append((t, env))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}  # a rollout is consumed by the update that follows it; nothing to resume


@dataclass
class Rollout:
    """What an on-policy learner's ``training_step`` receives.

    ``data``: ``[T, N, ...]`` fields; ``last_obs [N, *obs]``: the observation after the last step;
    ``final_obs [K, *obs]`` with ``final_t``, ``final_env`` ``[K]``: real last observations of
    episodes truncated at those steps; ``initial_state``: the policy's recurrent state at step 0.
    ``round``/``total_rounds`` count learner steps (for schedules such as lr annealing).
    """

    data: dict[str, torch.Tensor]
    last_obs: torch.Tensor
    final_obs: torch.Tensor | None
    final_t: torch.Tensor
    final_env: torch.Tensor
    initial_state: Any
    round: int
    total_rounds: int
    env_steps: int

    @property
    def num_steps(self) -> int:
        return int(self.data["reward"].shape[0])

    @property
    def num_envs(self) -> int:
        return int(self.data["reward"].shape[1])


def make_rollout(
    storage: RolloutStorage,
    last_obs: torch.Tensor,
    initial_state: Any,
    round_: int,
    total_rounds: int,
    env_steps: int,
) -> Rollout:
    """Package what ``storage`` holds after a full collection."""
    final = torch.stack(storage.final_obs) if storage.final_obs else None
    idx = torch.tensor(storage.final_index, dtype=torch.long).reshape(-1, 2)
    return Rollout(
        data=storage.data,
        last_obs=last_obs,
        final_obs=final,
        final_t=idx[:, 0],
        final_env=idx[:, 1],
        initial_state=initial_state,
        round=round_,
        total_rounds=total_rounds,
        env_steps=env_steps,
    )
