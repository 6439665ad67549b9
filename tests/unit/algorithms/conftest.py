"""A ``BuildContext`` for builders, without envs or Hydra."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import pytest

from d2rl.config import ReplayConfig
from d2rl.core import BuildContext
from d2rl.envs import EnvFacts
from d2rl.registry import get_network


@pytest.fixture
def make_ctx() -> Callable[..., BuildContext]:
    """``make_ctx(obs_space, action_space, network="identity", num_envs=2, **network_options)``."""

    def _make(
        observation_space: gym.Space,
        action_space: gym.Space,
        network: str = "identity",
        num_envs: int = 2,
        replay: str = "uniform",
        **network_options: Any,
    ) -> BuildContext:
        spec = get_network(network)
        pixels = "pixels" in spec.accepts and len(observation_space.shape or ()) == 3
        return BuildContext(
            observation_space=observation_space,
            action_space=action_space,
            num_envs=num_envs,
            facts=EnvFacts(pixels=pixels, rgb=pixels),
            network=spec,
            network_cfg=spec.config_class(**network_options),
            replay_cfg=ReplayConfig(kind=replay, capacity=1000),
            total_env_steps=1000,
            seed=0,
        )

    return _make
