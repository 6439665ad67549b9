"""Proportional prioritized replay (Schaul et al. 2016, arXiv:1511.05952) on a sum tree.

``P(i) = p_i^alpha / sum_k p_k^alpha``; importance weights ``w_i = (N * P(i))^-beta / max_j w_j``
with ``beta`` annealed to 1. New transitions get the largest priority seen so far. Sampling is
stratified (one uniform draw in each of ``B`` equal segments of the total, as in the paper) and
both sampling and priority updates are vectorised over the batch.

Deviations: the max weight is taken over the sampled batch (as in most implementations, e.g.
Dopamine) rather than over the whole buffer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from d2rl.buffers.replay import ReplayBuffer


class SumTree:
    """A complete binary tree over ``size`` leaves; each node holds the sum of its children."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.leaves = 1 << max(0, (size - 1).bit_length())  # power of two >= size
        self.depth = self.leaves.bit_length() - 1
        self.nodes = np.zeros(2 * self.leaves, dtype=np.float64)  # node 1 is the root

    @property
    def total(self) -> float:
        return float(self.nodes[1])

    def get(self, index: np.ndarray) -> np.ndarray:
        return self.nodes[index + self.leaves]

    def set(self, index: np.ndarray, value: np.ndarray) -> None:
        """Set leaves ``index`` (last write wins for duplicates) and refresh their ancestors."""
        node = np.asarray(index, dtype=np.int64) + self.leaves
        self.nodes[node] = value
        for _ in range(self.depth):
            node = np.unique(node >> 1)
            self.nodes[node] = self.nodes[2 * node] + self.nodes[2 * node + 1]

    def find(self, prefix: np.ndarray) -> np.ndarray:
        """Leaf index ``i`` with ``sum(p[:i]) <= prefix < sum(p[:i+1])``, for each prefix sum."""
        prefix = np.array(prefix, dtype=np.float64)
        node = np.ones(prefix.shape, dtype=np.int64)
        for _ in range(self.depth):
            left = 2 * node
            left_sum = self.nodes[left]
            go_right = prefix >= left_sum
            prefix -= np.where(go_right, left_sum, 0.0)
            node = left + go_right
        return np.minimum(node - self.leaves, self.size - 1)


class PrioritizedReplayBuffer(ReplayBuffer):
    """``ReplayBuffer`` whose ``sample`` draws by priority and adds ``weights [B]``."""

    def __init__(
        self,
        *args: Any,
        alpha: float = 0.6,
        priority_eps: float = 1e-6,
        importance_weights: bool = True,
        beta_initial: float = 0.4,
        beta_final: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.alpha, self.priority_eps = alpha, priority_eps
        self.importance_weights = importance_weights
        self.tree = SumTree(self.rows * self.num_envs)
        self.max_priority = 1.0  # of p (before alpha)
        self.beta_initial, self.beta_final = beta_initial, beta_final
        self.beta = beta_initial

    def set_progress(self, fraction: float) -> None:
        """Anneal ``beta`` linearly from ``beta_initial`` to ``beta_final`` over the run (``fraction`` of
        its env steps done, in [0, 1]); the Loop calls it every round."""
        self.beta = self.beta_initial + (self.beta_final - self.beta_initial) * min(1.0, max(0.0, fraction))

    def add(self, *args: Any, **kwargs: Any) -> np.ndarray:
        ids = super().add(*args, **kwargs)
        N, R = self.num_envs, self.rows
        rows = ids // N
        envs = ids % N
        blocked = [((rows + 1) % R) * N + envs]  # the next row is an obs-only row (for now)
        # rows whose older frames were just overwritten can no longer be rebuilt
        for back in range(1, self.frame_stack):
            blocked.append(((rows + 1 + back) % R) * N + envs)
        stale = np.concatenate(blocked)
        self.tree.set(stale, np.zeros(stale.shape))
        self.tree.set(ids, np.full(ids.shape, self.max_priority**self.alpha))
        return ids

    def sample_ids(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        total = self.tree.total
        if total <= 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        segment = total / batch_size
        prefix = (np.arange(batch_size) + self.rng.random(batch_size)) * segment
        ids = self.tree.find(prefix)
        rows, envs = ids // self.num_envs, ids % self.num_envs
        bad = ~self._usable(rows, envs)
        if bad.any():  # zero-priority leaves hit by float round-off: redraw them uniformly
            rows[bad], envs[bad] = super().sample_ids(int(bad.sum()))
        return rows, envs

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        rows, envs = self.sample_ids(batch_size)
        batch = self.gather(rows, envs)
        if self.importance_weights:
            prob = self.tree.get(rows * self.num_envs + envs) / self.tree.total
            weights = (len(self) * np.maximum(prob, 1e-12)) ** -self.beta
            batch["weights"] = torch.from_numpy((weights / weights.max()).astype(np.float32))
        else:
            batch["weights"] = torch.ones(batch_size)
        return batch

    def update_priorities(
        self, indices: torch.Tensor | np.ndarray, td_error: torch.Tensor | np.ndarray
    ) -> None:
        """``p_i = |delta_i| + eps`` for the flat ids returned in ``batch["indices"]``."""
        idx = np.asarray(indices, dtype=np.int64)
        p = np.abs(np.asarray(td_error, dtype=np.float64)) + self.priority_eps
        # a non-finite TD error (a diverged update, stopped by the NaN guard at the end of its
        # learner step) keeps the old priority: NaN in the sum tree would break every later sample
        finite = np.isfinite(p)
        if finite.any():
            self.max_priority = max(self.max_priority, float(p[finite].max()))
        # only transitions still stored (not overwritten since sampling) keep a priority
        alive = (self.tree.get(idx) > 0) & finite
        self.tree.set(idx[alive], p[alive] ** self.alpha)

    def state_arrays(self) -> dict[str, np.ndarray]:
        state = super().state_arrays()
        state["priorities"] = self.tree.nodes
        state["max_priority"] = np.array(self.max_priority, dtype=np.float64)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.tree.nodes[...] = state["priorities"].numpy()
        self.max_priority = float(state["max_priority"])
