"""The five probe environments (after Andy Jones, "Debugging RL, Without the Agonizing Pain").

Each isolates one thing an agent must get right; an agent that fails one has a specific bug.
Observations are Box(1,), actions Discrete(2) (or Box(1,) in [-1, 1] for the continuous variants).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class _Probe(gym.Env[np.ndarray, Any]):
    def __init__(self, continuous: bool = False) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.continuous = continuous
        self.action_space: gym.Space[Any] = (
            gym.spaces.Box(-1.0, 1.0, (1,), np.float32) if continuous else gym.spaces.Discrete(2)
        )
        self.t = 0
        self.obs = np.zeros(1, np.float32)

    def _good(self, action: Any) -> float:
        """+1 for the 'right' action (1, or a positive continuous action), -1 otherwise."""
        if self.continuous:
            return float(np.clip(np.asarray(action).reshape(-1)[0], -1, 1))
        return 1.0 if int(action) == 1 else -1.0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        self.obs = self._first_obs()
        return self.obs.copy(), {}

    def _first_obs(self) -> np.ndarray:
        return np.zeros(1, np.float32)


class ConstantReward(_Probe):
    """One step, reward +1: V(s) must learn 1 (value loss / scaling bugs)."""

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        return self.obs.copy(), 1.0, True, False, {}


class ObsDependentReward(_Probe):
    """One step, obs +-1 at random, reward = obs: V must depend on obs (backprop through obs)."""

    def _first_obs(self) -> np.ndarray:
        return np.array([self.np_random.choice([-1.0, 1.0])], np.float32)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        return self.obs.copy(), float(self.obs[0]), True, False, {}


class TwoStepDiscount(_Probe):
    """Obs 0 then obs 1, reward 1 at the end only: V(0) = gamma, V(1) = 1 (discounting, bootstrapping)."""

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        if self.t == 1:
            self.obs = np.ones(1, np.float32)
            return self.obs.copy(), 0.0, False, False, {}
        return self.obs.copy(), 1.0, True, False, {}


class ActionDependentReward(_Probe):
    """One step, obs 0, reward +1 for the right action, -1 otherwise (policy gradient)."""

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        return self.obs.copy(), self._good(action), True, False, {}


class ObsActionReward(_Probe):
    """One step, obs +-1: reward +1 if the action's sign matches the obs (policy and value both use obs)."""

    def _first_obs(self) -> np.ndarray:
        return np.array([self.np_random.choice([-1.0, 1.0])], np.float32)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        return self.obs.copy(), self._good(action) * float(self.obs[0]), True, False, {}


class MultiBinaryAction(ConstantReward):
    """An action space no built-in algorithm supports, for the error path."""

    def __init__(self) -> None:
        super().__init__()
        self.action_space = gym.spaces.MultiBinary(3)


PROBES = {
    "ConstantReward": ConstantReward,
    "ObsDependentReward": ObsDependentReward,
    "TwoStepDiscount": TwoStepDiscount,
    "ActionDependentReward": ActionDependentReward,
    "ObsActionReward": ObsActionReward,
}


def register() -> None:
    """Register ``d2rl-probe/<Name>-v0`` and ``d2rl-probe/<Name>Continuous-v0`` with gymnasium."""
    for name, cls in PROBES.items():
        if f"d2rl-probe/{name}-v0" not in gym.registry:
            gym.register(f"d2rl-probe/{name}-v0", entry_point=cls, max_episode_steps=10)
            gym.register(
                f"d2rl-probe/{name}Continuous-v0",
                entry_point=cls,
                max_episode_steps=10,
                kwargs={"continuous": True},
            )
    if "d2rl-probe/MultiBinaryAction-v0" not in gym.registry:
        gym.register("d2rl-probe/MultiBinaryAction-v0", entry_point=MultiBinaryAction)
