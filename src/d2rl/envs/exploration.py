"""Sparse-reward tasks where exploration decides, with countable states, registered as gymnasium ids.

``d2rl/DeepSea-v0`` (``env=deep_sea``): the "deep sea" of bsuite (Osband et al. 2020, "Behaviour
Suite for Reinforcement Learning", ICLR; also Osband et al. 2019, "Deep Exploration via
Randomized Value Functions", JMLR). An N x N grid; the agent starts at the top-left cell and
descends one row per step, so an episode lasts N steps. Each step it moves one column left or
right; which of the two actions means "right" is drawn per cell (``randomize_actions``, fixed by
``mapping_seed``), so no action is a shortcut. Moving right costs ``0.01 / N``; moving right
from the bottom-right cell pays +1. The one rewarded path (right at every step, return 0.99) has
probability 2^-N under a uniform policy, and every other path returns <= 0: a policy-gradient
agent that follows the reward learns to stop moving right. Observation: the one-hot position
(N*N floats; the final observation is the last cell). States: the N(N+1)/2 reachable cells.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class DeepSea(gym.Env[np.ndarray, Any]):
    metadata = {"render_modes": []}

    def __init__(
        self, size: int = 20, randomize_actions: bool = True, mapping_seed: int = 0, move_cost: float = 0.01
    ) -> None:
        if int(size) < 2:
            raise ValueError(f"DeepSea size must be >= 2, got {size}")
        self.size = n = int(size)
        self.move_cost = float(move_cost)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (n * n,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        if randomize_actions:  # the action that moves right, per cell
            self.right_action = np.random.default_rng(mapping_seed).integers(0, 2, (n, n))
        else:
            self.right_action = np.ones((n, n), dtype=np.int64)
        self.row = self.col = 0

    def _obs(self, row: int, col: int) -> np.ndarray:
        obs = np.zeros(self.size * self.size, np.float32)
        obs[row * self.size + col] = 1.0
        return obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.row = self.col = 0
        return self._obs(0, 0), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        n = self.size
        right = int(action) == int(self.right_action[self.row, self.col])
        reward = 0.0
        if right:
            if self.col == n - 1:
                reward += 1.0
            reward -= self.move_cost / n
            self.col = min(self.col + 1, n - 1)
        else:
            self.col = max(self.col - 1, 0)
        self.row += 1
        if self.row == n:
            return self._obs(n - 1, self.col), reward, True, False, {}
        return self._obs(self.row, self.col), reward, False, False, {}


def deep_sea_cells(obs: np.ndarray, size: int) -> set[tuple[int, int]]:
    """The (row, col) cells that ``[..., N*N]`` one-hot DeepSea observations show."""
    flat = np.asarray(obs).reshape(-1, size * size)
    idx = np.flatnonzero(flat.max(axis=1) > 0.5)
    cells = flat[idx].argmax(axis=1)
    return {(int(c) // size, int(c) % size) for c in np.unique(cells)}


def register() -> None:
    if "d2rl/DeepSea-v0" not in gym.registry:
        gym.register("d2rl/DeepSea-v0", entry_point="d2rl.envs.exploration:DeepSea")


class DeepSeaVisits:
    """The distinct DeepSea cells seen in training rollouts (``add`` each rollout's observations)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.cells: set[tuple[int, int]] = set()

    def add(self, obs: Any) -> None:
        self.cells |= deep_sea_cells(np.asarray(obs), self.size)

    @property
    def count(self) -> int:
        return len(self.cells)

    @property
    def reachable(self) -> int:
        return self.size * (self.size + 1) // 2


register()
