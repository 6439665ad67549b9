"""Vectorised environments: one VectorEnv contract (SAME_STEP autoreset) for every suite."""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np

from d2rl.errors import D2RLError
from d2rl.registry import get_env_suite


@dataclass(frozen=True)
class EnvFacts:
    """What a suite declares about its observations and episodes, so nothing downstream guesses
    from a shape. Each suite's ``make_vec`` sets it as ``d2rl_facts`` on the vector env it returns.

    - ``pixels``: observations are raw uint8 images, channels first (``[C, H, W]``).
    - ``frame_stack``: ``k > 1`` means axis 0 holds ``k`` consecutive frames, oldest first, each
      of ``C // k`` channels (``[k, H, W]`` for grayscale, ``[3k, H, W]`` for stacked RGB); a new
      episode's first stack is padded with its first frame or with zeros.
    - ``rgb``: each frame is RGB (3 channels) rather than grayscale.
    - ``lives``: a life loss ends a learner episode (``terminated``) but not the game; such steps
      carry the mask ``info["life_loss"] [N]`` and the next obs continues the frame stack.
    - ``episode_stats``: the suite reports whole-game, unclipped statistics in ``info["episode"]``
      (``{"r": [N], "l": [N]}``, mask ``info["_episode"]``; gymnasium's RecordEpisodeStatistics
      layout), and only those count as episodes.
    """

    pixels: bool = False
    frame_stack: int = 1
    rgb: bool = False
    lives: bool = False
    episode_stats: bool = False


OptionsT = TypeVar("OptionsT")


def suite_options(options_class: type[OptionsT], kwargs: dict[str, Any], suite: str) -> OptionsT:
    """``options_class(**kwargs)`` (a dataclass), refusing unknown keys in one readable line."""
    known = {f.name for f in dataclasses.fields(options_class)}  # type: ignore[arg-type]
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise D2RLError(f"unknown {suite} option(s) {unknown} in env.kwargs; known: {sorted(known)}")
    return options_class(**kwargs)


def env_facts(envs: Any) -> EnvFacts:
    """The facts a suite set on ``envs`` (or on an env it wraps); ``EnvFacts()`` if none did."""
    env = envs
    for _ in range(64):  # walk down wrappers (VectorWrapper.env) to the suite's env
        facts = getattr(env, "d2rl_facts", None)
        if isinstance(facts, EnvFacts):
            return facts
        env = getattr(env, "env", None)
        if env is None:
            break
    return EnvFacts()


def make_vec_env(env_cfg: Any, seed: int, num_envs: int | None = None, **extra: Any) -> gym.vector.VectorEnv:
    """Build ``env_cfg`` through its suite; the caller resets it with ``seed`` (env i gets ``seed + i``).

    ``extra`` goes to the suite's ``make_vec``: ``evaluation=True`` for evaluation envs (a suite
    may then drop reward clipping and life-loss episode ends, or use unseen levels) and ``render_mode``.
    """
    suite = get_env_suite(env_cfg.suite)
    missing = [m for m in suite.requires if importlib.util.find_spec(m) is None]
    if missing:
        hint = suite.install_hint or f"pip install {' '.join(missing)}"
        raise D2RLError(f"env suite '{suite.name}' needs {', '.join(missing)}: {hint}")
    n = int(num_envs if num_envs is not None else env_cfg.num_envs)
    if n < 1:
        raise D2RLError(f"env.num_envs must be >= 1, got {n}")
    envs = suite.make(env_cfg, n, **extra)  # make_vec may be a lazy "module:attr" path
    envs.action_space.seed(seed)
    return envs


def action_space_kind(space: gym.Space) -> str:
    """The name algorithms declare support for: discrete, box, multi_discrete, multi_binary."""
    if isinstance(space, gym.spaces.Discrete):
        return "discrete"
    if isinstance(space, gym.spaces.Box):
        return "box"
    if isinstance(space, gym.spaces.MultiDiscrete):
        return "multi_discrete"
    if isinstance(space, gym.spaces.MultiBinary):
        return "multi_binary"
    return type(space).__name__


def obs_shape(space: gym.Space) -> tuple[int, ...]:
    if not isinstance(space, gym.spaces.Box):
        raise D2RLError(
            f"observation space {space} is not a Box; flatten it with a wrapper (env suites must give arrays)"
        )
    return tuple(int(d) for d in space.shape)


def finite_bounds(space: gym.spaces.Box) -> bool:
    return bool(np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)))
