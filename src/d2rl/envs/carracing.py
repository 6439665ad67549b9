"""The `carracing` suite: gymnasium's Box2D CarRacing from pixels (Klimov 2016).

Obs: uint8 ``[C, 96, 96]`` (channels first; ``C = 3`` RGB or 1 grayscale, times ``frame_stack``).
Actions: continuous (steer, gas, brake) or, with ``continuous: false``, 5 discrete actions.
``action_repeat`` repeats each action (summing rewards, stopping at an episode end), so one agent
step is ``action_repeat`` frames; episode statistics are then counted in agent steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from d2rl.envs import EnvFacts, suite_options
from d2rl.errors import D2RLError


@dataclass
class CarRacingOptions:
    """``env.kwargs`` of the carracing suite."""

    continuous: bool = True
    action_repeat: int = 1  # frames per agent step
    grayscale: bool = False
    frame_stack: int = 1
    lap_complete_percent: float = 0.95
    domain_randomize: bool = False


class ActionRepeat(gym.Wrapper):
    """Repeat an action ``repeat`` times; rewards are summed, an episode end stops the repeat."""

    def __init__(self, env: gym.Env, repeat: int) -> None:
        super().__init__(env)
        self.repeat = repeat

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class ChannelsFirst(gym.ObservationWrapper):
    """``[H, W, C]`` or stacked ``[K, H, W, C]`` -> ``[K * C, H, W]``."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        shape = env.observation_space.shape
        assert shape is not None
        *stack, h, w, c = shape
        k = int(np.prod(stack)) if stack else 1
        self.observation_space = gym.spaces.Box(0, 255, (k * c, h, w), np.uint8)

    def observation(self, obs: np.ndarray) -> np.ndarray:
        h, w, c = obs.shape[-3:]
        return np.moveaxis(obs.reshape(-1, h, w, c), 3, 1).reshape(-1, h, w)


def make_vec(
    env_cfg: Any, num_envs: int, render_mode: str | None = None, evaluation: bool = False
) -> gym.vector.VectorEnv:
    opt = suite_options(CarRacingOptions, dict(env_cfg.kwargs or {}), "carracing")
    if opt.action_repeat < 1 or opt.frame_stack < 1:
        raise D2RLError("env.kwargs.action_repeat and frame_stack must be >= 1")
    make_kwargs: dict[str, Any] = {
        "continuous": opt.continuous,
        "lap_complete_percent": opt.lap_complete_percent,
        "domain_randomize": opt.domain_randomize,
    }
    if env_cfg.max_episode_steps is not None:
        make_kwargs["max_episode_steps"] = int(env_cfg.max_episode_steps)
    if render_mode is not None:
        make_kwargs["render_mode"] = render_mode

    def make() -> gym.Env:
        try:
            env = gym.make(str(env_cfg.id), **make_kwargs)
        except gym.error.DependencyNotInstalled as e:
            raise D2RLError(f"CarRacing needs Box2D ({e}); pip install 'd2rl[box2d]'") from e
        if opt.action_repeat > 1:
            env = ActionRepeat(env, opt.action_repeat)
        if opt.grayscale:
            env = gym.wrappers.GrayscaleObservation(env, keep_dim=True)
        if opt.frame_stack > 1:
            env = gym.wrappers.FrameStackObservation(env, opt.frame_stack)
        return ChannelsFirst(env)

    mode = "async" if env_cfg.vectorization == "async" else "sync"
    vec_cls = gym.vector.AsyncVectorEnv if mode == "async" else gym.vector.SyncVectorEnv
    envs: gym.vector.VectorEnv = vec_cls([make] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)
    envs.d2rl_facts = EnvFacts(  # type: ignore[attr-defined]
        pixels=True, frame_stack=opt.frame_stack, rgb=not opt.grayscale
    )
    return envs
