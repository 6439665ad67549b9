"""The `dmc` suite: DeepMind Control Suite tasks (Tassa et al. 2018) as gymnasium vector envs.

``env.id`` is ``<domain>-<task>`` (``cartpole-swingup``, ``walker-walk``, ``ball_in_cup-catch``).
Observations are the task's observation dict flattened to one float32 vector (in the dict's
order), or with ``env.kwargs.pixels=true`` a rendered uint8 image ``[3, H, W]`` (rendered with
MuJoCo's EGL backend unless ``MUJOCO_GL`` says otherwise). dm_control episodes end by its time
limit (1000 control steps) with discount 1: that is a truncation; a step with discount 0 is a
termination. ``action_repeat`` repeats each action (summing rewards), as in PlaNet/DrQ.
The vector env autoresets in gymnasium's SAME_STEP mode (final obs in ``info["final_obs"]``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from d2rl.envs import EnvFacts, suite_options
from d2rl.errors import D2RLError


@dataclass
class DMCOptions:
    """``env.kwargs`` of the dmc suite."""

    pixels: bool = False  # observations: rendered images [3, H, W] instead of the state vector
    image_size: int = 84
    camera_id: int = 0
    action_repeat: int = 1


def parse_options(kwargs: dict[str, Any]) -> DMCOptions:
    opt = suite_options(DMCOptions, kwargs, "dmc")
    if opt.action_repeat < 1:
        raise D2RLError(f"env.kwargs.action_repeat must be >= 1, got {opt.action_repeat}")
    return opt


def split_id(env_id: str) -> tuple[str, str]:
    """``cartpole-swingup`` -> ``("cartpole", "swingup")``, checked against the suite's task list."""
    from dm_control import suite

    domain, _, task = env_id.partition("-")
    if (domain, task) not in suite.ALL_TASKS:
        known = ", ".join(f"{d}-{t}" for d, t in suite.ALL_TASKS)
        raise D2RLError(f"unknown dm_control task '{env_id}'; use <domain>-<task>, one of: {known}")
    return domain, task


class DMCEnv(gym.Env[np.ndarray, np.ndarray]):
    """One dm_control task as a gymnasium env."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, domain: str, task: str, options: DMCOptions, render_mode: str | None = None) -> None:
        from dm_control import suite

        self._env = suite.load(domain, task)
        self.opt = options
        self.render_mode = render_mode
        spec = self._env.action_spec()
        self.action_space = gym.spaces.Box(
            spec.minimum.astype(np.float32), spec.maximum.astype(np.float32), dtype=np.float32
        )
        if options.pixels:
            size = options.image_size
            self.observation_space: gym.spaces.Box = gym.spaces.Box(0, 255, (3, size, size), np.uint8)
        else:
            dim = sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)

    def _obs(self, time_step: Any) -> np.ndarray:
        if self.opt.pixels:
            size = self.opt.image_size
            img = self._env.physics.render(size, size, camera_id=self.opt.camera_id)  # [H, W, 3]
            return np.ascontiguousarray(img.transpose(2, 0, 1))
        return np.concatenate([np.asarray(v, np.float32).reshape(-1) for v in time_step.observation.values()])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:  # the task draws initial states from its own RandomState
            self._env.task._random = np.random.RandomState(seed)
        return self._obs(self._env.reset()), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        reward = 0.0
        for _ in range(self.opt.action_repeat):
            ts = self._env.step(action)
            reward += float(ts.reward or 0.0)
            if ts.last():
                break
        terminated = bool(ts.last() and ts.discount == 0.0)
        truncated = bool(ts.last() and not terminated)
        return self._obs(ts), reward, terminated, truncated, {}

    def render(self) -> np.ndarray:  # type: ignore[override]
        return self._env.physics.render(240, 320, camera_id=self.opt.camera_id)


def make_vec(
    env_cfg: Any, num_envs: int, render_mode: str | None = None, evaluation: bool = False
) -> gym.vector.VectorEnv:
    """``evaluation`` is part of the suite contract; dm_control tasks are the same for evaluation."""
    opt = parse_options(dict(env_cfg.kwargs or {}))
    if opt.pixels or render_mode is not None:
        os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; read when dm_control loads
    domain, task = split_id(str(env_cfg.id))
    max_steps = env_cfg.max_episode_steps

    def make() -> gym.Env:
        env: gym.Env = DMCEnv(domain, task, opt, render_mode)
        if max_steps is not None:
            env = gym.wrappers.TimeLimit(env, int(max_steps))
        return env

    if env_cfg.vectorization not in ("sync", "async"):
        raise D2RLError(f"env.vectorization must be 'sync' or 'async', got '{env_cfg.vectorization}'")
    vec_cls = gym.vector.SyncVectorEnv if env_cfg.vectorization == "sync" else gym.vector.AsyncVectorEnv
    envs: gym.vector.VectorEnv = vec_cls([make] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)
    envs.d2rl_facts = EnvFacts(pixels=opt.pixels, rgb=opt.pixels)  # type: ignore[attr-defined]
    return envs
