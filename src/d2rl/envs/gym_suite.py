"""The `gym` suite: any registered gymnasium id, vectorised with gymnasium.make_vec."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from d2rl.envs import EnvFacts
from d2rl.envs import exploration as _exploration  # noqa: F401  (registers d2rl/DeepSea-v0)
from d2rl.envs import memory as _memory  # noqa: F401  (registers d2rl/MemoryCue-v0, ...)
from d2rl.errors import D2RLError

_EXTRAS = {"box2d": "pip install 'd2rl[box2d]'", "mujoco": "pip install 'd2rl[mujoco]'"}


def make_vec(
    env_cfg: Any, num_envs: int, render_mode: str | None = None, evaluation: bool = False
) -> gym.vector.VectorEnv:
    """``evaluation`` is part of the suite contract; plain gymnasium envs are the same for evaluation.

    Facts: a uint8 image observation (3 axes) counts as pixels; frames are never taken as stacked.
    """
    kwargs = dict(env_cfg.kwargs or {})
    if env_cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = int(env_cfg.max_episode_steps)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    if env_cfg.vectorization not in ("sync", "async"):
        raise D2RLError(f"env.vectorization must be 'sync' or 'async', got '{env_cfg.vectorization}'")
    try:
        envs = gym.make_vec(
            env_cfg.id,
            num_envs=num_envs,
            vectorization_mode=env_cfg.vectorization,
            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
            **kwargs,
        )
    except gym.error.DependencyNotInstalled as e:
        extra = next((k for k in _EXTRAS if k in str(e).lower()), None)
        hint = _EXTRAS[extra] if extra else "install the package the environment needs"
        raise D2RLError(
            f"env '{env_cfg.id}' is missing a dependency ({str(e).splitlines()[0]}); {hint}"
        ) from e
    except (
        gym.error.NameNotFound,
        gym.error.NamespaceNotFound,
        gym.error.VersionNotFound,
        gym.error.DeprecatedEnv,
        gym.error.UnregisteredEnv,
    ) as e:
        raise D2RLError(
            f"unknown gymnasium env id '{env_cfg.id}' ({e}); use a registered id, e.g. env=gym env.id=Acrobot-v1"
        ) from e
    space = envs.single_observation_space
    pixels = isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3
    envs.d2rl_facts = EnvFacts(pixels=pixels)  # type: ignore[attr-defined]
    return envs
