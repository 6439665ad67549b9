"""EnvFacts: what each suite declares about its observations and episodes."""

from __future__ import annotations

import gymnasium as gym
import pytest
from omegaconf import OmegaConf

from d2rl.envs import EnvFacts, env_facts, make_vec_env


def _cfg(env_id: str, suite: str = "gym", **kwargs):  # type: ignore[no-untyped-def]
    return OmegaConf.create(
        {
            "id": env_id,
            "suite": suite,
            "num_envs": 1,
            "vectorization": "sync",
            "max_episode_steps": None,
            "kwargs": kwargs,
        }
    )


def test_plugin_envs_without_facts_get_the_defaults() -> None:
    envs = gym.make_vec("CartPole-v1", num_envs=1)
    assert env_facts(envs) == EnvFacts()
    assert env_facts(gym.wrappers.vector.RecordEpisodeStatistics(envs)) == EnvFacts()
    envs.close()


def test_facts_survive_vector_wrappers() -> None:
    envs = make_vec_env(_cfg("CartPole-v1"), seed=0)
    envs.d2rl_facts = EnvFacts(episode_stats=True)  # type: ignore[attr-defined]
    assert env_facts(gym.wrappers.vector.RecordEpisodeStatistics(envs)).episode_stats
    envs.close()


def test_gym_suite_declares_uint8_images_as_pixels_never_as_a_stack() -> None:
    envs = make_vec_env(_cfg("CartPole-v1"), seed=0)
    assert env_facts(envs) == EnvFacts()
    envs.close()
    pytest.importorskip("Box2D")
    envs = make_vec_env(_cfg("CarRacing-v3", continuous=False), seed=0)  # [96, 96, 3] uint8
    assert env_facts(envs) == EnvFacts(pixels=True)
    envs.close()


def test_dmc_declares_pixels_only_when_rendering() -> None:
    pytest.importorskip("dm_control")
    envs = make_vec_env(_cfg("cartpole-swingup", suite="dmc"), seed=0)
    assert env_facts(envs) == EnvFacts()
    envs.close()
    envs = make_vec_env(_cfg("cartpole-swingup", suite="dmc", pixels=True), seed=0)
    assert env_facts(envs) == EnvFacts(pixels=True, rgb=True)
    envs.close()
