"""The ``toy`` env suite of the example plugin: a one-dimensional corridor, chosen with
``env=toy_corridor`` (the YAML ships in ``d2rl_reinforce/conf/env/``).

The agent starts in cell 0 of ``length`` cells and moves left (action 0) or right (action 1);
reaching the last cell ends the episode with reward +1, every other step costs ``step_cost``.
Observations are one-hot cell indicators. The optimal return is ``1 - (length - 2) * step_cost``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from d2rl.envs import EnvFacts
from d2rl.errors import D2RLError


class Corridor(gym.Env[np.ndarray, int]):
    def __init__(self, length: int = 8, step_cost: float = 0.01) -> None:
        if length < 2:
            raise ValueError(f"length must be >= 2, got {length}")
        self.length = length
        self.step_cost = step_cost
        self.observation_space = gym.spaces.Box(0.0, 1.0, (length,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.pos = 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.length, dtype=np.float32)
        obs[self.pos] = 1.0
        return obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.pos = 0
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.pos = int(np.clip(self.pos + (1 if int(action) == 1 else -1), 0, self.length - 1))
        done = self.pos == self.length - 1
        return self._obs(), 1.0 if done else -self.step_cost, done, False, {}


ENVS: dict[str, type[gym.Env]] = {"Corridor-v0": Corridor}


def make_vec(
    env_cfg: Any, num_envs: int, render_mode: str | None = None, evaluation: bool = False
) -> gym.vector.VectorEnv:
    """The suite contract: SAME_STEP autoreset. The corridor has no renderer and is the same for
    evaluation, so ``render_mode`` and ``evaluation`` change nothing here."""
    if env_cfg.id not in ENVS:
        raise D2RLError(f"unknown toy env id '{env_cfg.id}'; the toy suite has {', '.join(sorted(ENVS))}")
    env_class = ENVS[env_cfg.id]
    kwargs = dict(env_cfg.kwargs or {})
    max_steps = int(env_cfg.max_episode_steps or 100)

    def make() -> gym.Env:
        return gym.wrappers.TimeLimit(env_class(**kwargs), max_episode_steps=max_steps)

    envs = gym.vector.SyncVectorEnv([make] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)
    envs.d2rl_facts = EnvFacts()  # vector observations, episodes end where the env says
    return envs
