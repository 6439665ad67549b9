"""The `procgen` suite: the 16 Procgen games (Cobbe et al. 2020) through ``procgen-mirror``'s gym3 API.

gym3 envs are already batched (one C++ object steps all ``num`` games), so they are wrapped as
a gymnasium ``VectorEnv`` directly: obs ``[N, 3, 64, 64]`` uint8 (CHW), 15 discrete actions.
A gym3 env resets a finished game inside ``act``; ``observe`` then returns the new game's first
frame with ``first=True`` and the reward of the step that ended the old one. So the step that
ends an episode is reported with ``terminated=True`` (every Procgen episode end, including the
games' own time-outs, is a termination, as in the Procgen baselines) and the next episode's
first obs, which is SAME_STEP autoreset. The real last frame is not available from gym3:
``info["final_obs"]`` holds the next episode's first frame, which is only ever used as the
next state of a terminal transition, where it is masked out.

Generalisation (train/test level split): training envs use levels ``[start_level,
start_level + num_levels)``; evaluation envs use the unseen levels from ``start_level +
num_levels`` on (``eval_levels: test``, the default) or the training levels (``eval_levels:
train``). ``train/episode_return`` reports training levels, ``eval/return_mean`` the chosen split.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from d2rl.envs import EnvFacts, suite_options
from d2rl.errors import D2RLError

GAMES = (
    "bigfish",
    "bossfight",
    "caveflyer",
    "chaser",
    "climber",
    "coinrun",
    "dodgeball",
    "fruitbot",
    "heist",
    "jumper",
    "leaper",
    "maze",
    "miner",
    "ninja",
    "plunder",
    "starpilot",
)
TEST_LEVELS = 100_000  # number of unseen levels evaluation draws from


@dataclass
class ProcgenOptions:
    """``env.kwargs`` of the procgen suite."""

    num_levels: int = 200  # training levels; 0 = unlimited (no train/test split)
    start_level: int = 0
    distribution_mode: str = "easy"  # easy | hard (Cobbe et al. 2020, section 2)
    eval_levels: str = "test"  # test: unseen levels | train: the training levels
    use_backgrounds: bool = True
    restrict_themes: bool = False
    use_monochrome_assets: bool = False
    center_agent: bool = True
    num_threads: int = 0  # gym3 worker threads; 0 lets procgen decide

    def check(self) -> None:
        if self.distribution_mode not in ("easy", "hard", "extreme", "memory", "exploration"):
            raise D2RLError(
                f"env.kwargs.distribution_mode must be easy or hard, got '{self.distribution_mode}'"
            )
        if self.eval_levels not in ("test", "train"):
            raise D2RLError(f"env.kwargs.eval_levels must be 'test' or 'train', got '{self.eval_levels}'")
        if self.num_levels < 0 or self.start_level < 0:
            raise D2RLError("env.kwargs.num_levels and start_level must be >= 0")


def level_range(opt: ProcgenOptions, evaluation: bool) -> tuple[int, int]:
    """``(start_level, num_levels)`` for training or evaluation envs."""
    if evaluation and opt.eval_levels == "test" and opt.num_levels > 0:
        return opt.start_level + opt.num_levels, TEST_LEVELS
    return opt.start_level, opt.num_levels


class ProcgenVectorEnv(gym.vector.VectorEnv):
    """A gym3 ``ProcgenGym3Env`` as a gymnasium VectorEnv with SAME_STEP autoreset."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}
    d2rl_facts = EnvFacts(pixels=True, rgb=True, episode_stats=True)  # one RGB frame, no stack

    def __init__(
        self,
        game: str,
        num_envs: int,
        start_level: int,
        num_levels: int,
        opt: ProcgenOptions,
        render_mode: str | None = None,
    ) -> None:
        self.game, self.num_envs, self.render_mode = game, num_envs, render_mode
        self.start_level, self.num_levels, self.opt = start_level, num_levels, opt
        self.single_observation_space = gym.spaces.Box(0, 255, (3, 64, 64), np.uint8)
        self.single_action_space = gym.spaces.Discrete(15)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.episode_return = np.zeros(num_envs, dtype=np.float64)
        self.episode_length = np.zeros(num_envs, dtype=np.int64)
        self._env: Any = None
        self._make(seed=None)

    def _make(self, seed: int | None) -> None:
        with contextlib.redirect_stderr(io.StringIO()):  # gym 0.26's import-time deprecation banner
            from procgen import ProcgenGym3Env
        kwargs: dict[str, Any] = {}
        if seed is not None:
            kwargs["rand_seed"] = int(seed) % (2**31)
        if self.opt.num_threads > 0:
            kwargs["num_threads"] = self.opt.num_threads
        if self.render_mode is not None:
            kwargs["render_mode"] = self.render_mode  # full-resolution 512x512 frames in info["rgb"]
        self._env = ProcgenGym3Env(
            num=self.num_envs,
            env_name=self.game,
            num_levels=self.num_levels,
            start_level=self.start_level,
            distribution_mode=self.opt.distribution_mode,
            use_backgrounds=self.opt.use_backgrounds,
            restrict_themes=self.opt.restrict_themes,
            use_monochrome_assets=self.opt.use_monochrome_assets,
            center_agent=self.opt.center_agent,
            **kwargs,
        )

    def _obs(self, gym3_obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.ascontiguousarray(gym3_obs["rgb"].transpose(0, 3, 1, 2))  # [N, 64, 64, 3] -> [N, 3, 64, 64]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        if seed is not None:  # a gym3 env cannot be reseeded: build a new one
            self._make(seed)
            self.action_space.seed(seed)
        _, obs, _ = self._env.observe()
        self.episode_return[:] = 0.0
        self.episode_length[:] = 0
        return self._obs(obs), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        self._env.act(np.asarray(actions, dtype=np.int32))
        reward, gym3_obs, first = self._env.observe()
        obs = self._obs(gym3_obs)
        terminated = np.asarray(first, dtype=bool).copy()
        truncated = np.zeros(self.num_envs, dtype=bool)
        self.episode_return += reward
        self.episode_length += 1
        info: dict[str, Any] = {}
        if terminated.any():
            info["episode"] = {"r": self.episode_return.copy(), "l": self.episode_length.copy()}
            info["_episode"] = terminated.copy()
            info["final_obs"] = obs  # placeholder: gym3 hides the last frame (see module docstring)
            info["_final_obs"] = terminated.copy()
            self.episode_return[terminated] = 0.0
            self.episode_length[terminated] = 0
        return obs, np.asarray(reward, dtype=np.float32), terminated, truncated, info

    def render(self) -> tuple[np.ndarray, ...] | None:  # type: ignore[override]
        """``render_mode="rgb_array"``: each env's current frame at full resolution, ``[512, 512, 3]``."""
        if self.render_mode is None:
            return None
        return tuple(np.asarray(info["rgb"]) for info in self._env.get_info())

    def close_extras(self, **kwargs: Any) -> None:
        self._env = None


def make_vec(
    env_cfg: Any, num_envs: int, render_mode: str | None = None, evaluation: bool = False
) -> gym.vector.VectorEnv:
    game = str(env_cfg.id)
    if game not in GAMES:
        raise D2RLError(f"unknown procgen game '{game}'; choose from {', '.join(GAMES)}")
    if render_mode not in (None, "rgb_array"):
        raise D2RLError(f"the procgen suite renders only render_mode=rgb_array, not {render_mode}")
    if env_cfg.max_episode_steps is not None:
        raise D2RLError("procgen games have their own episode time-outs; leave env.max_episode_steps null")
    opt = suite_options(ProcgenOptions, dict(env_cfg.kwargs or {}), "procgen")
    opt.check()
    start, count = level_range(opt, evaluation)
    return ProcgenVectorEnv(game, num_envs, start, count, opt, render_mode)
