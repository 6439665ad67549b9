"""Partially observable tasks that only an agent with memory can solve, registered as gymnasium ids.

- ``d2rl/MemoryCue-v0`` (``env=memory_cue``): a cue of -1 or +1 is shown at the first step only;
  the episode lasts ``length`` steps (default 10) and only the last action is rewarded: +1 if it
  matches the cue (action 1 for +1, action 0 for -1), -1 otherwise. Observation: [cue (0 after the
  first step), 1 at the last step else 0]. A memoryless policy averages 0; a perfect one earns 1.
- ``d2rl/CartPolePositions-v0`` (``env=cartpole_positions``): CartPole-v1 with the two velocities
  hidden (cart position and pole angle only), 500-step limit, solved at 475.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class MemoryCue(gym.Env[np.ndarray, int]):
    metadata = {"render_modes": []}

    def __init__(self, length: int = 10) -> None:
        if int(length) < 2:
            raise ValueError(f"MemoryCue length must be >= 2, got {length}")
        self.length = int(length)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0
        self.cue = 1.0

    def _obs(self) -> np.ndarray:
        cue = self.cue if self.t == 0 else 0.0
        last = 1.0 if self.t == self.length - 1 else 0.0
        return np.array([cue, last], np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        self.cue = 1.0 if self.np_random.integers(2) else -1.0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.t == self.length - 1:
            right = (int(action) == 1) == (self.cue > 0)
            self.t += 1
            return np.zeros(2, np.float32), 1.0 if right else -1.0, True, False, {}
        self.t += 1
        return self._obs(), 0.0, False, False, {}


class CartPolePositions(gym.ObservationWrapper[np.ndarray, int, np.ndarray]):
    """CartPole with velocities hidden: observation = (cart position, pole angle)."""

    def __init__(self, env: gym.Env[np.ndarray, int]) -> None:
        super().__init__(env)
        low = env.observation_space.low[[0, 2]]  # type: ignore[attr-defined]
        high = env.observation_space.high[[0, 2]]  # type: ignore[attr-defined]
        self.observation_space = gym.spaces.Box(low, high, (2,), np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[[0, 2]].astype(np.float32)


def _cartpole_positions(**kwargs: Any) -> gym.Env[np.ndarray, int]:
    from gymnasium.envs.classic_control import CartPoleEnv

    return CartPolePositions(CartPoleEnv(**kwargs))


def register() -> None:
    if "d2rl/MemoryCue-v0" not in gym.registry:
        gym.register("d2rl/MemoryCue-v0", entry_point=MemoryCue)
    if "d2rl/CartPolePositions-v0" not in gym.registry:
        gym.register(
            "d2rl/CartPolePositions-v0",
            entry_point=_cartpole_positions,
            max_episode_steps=500,
            reward_threshold=475.0,
        )


register()
