"""CarRacing suite: pixel shapes, discrete/continuous actions, action repeat and autoreset."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

pytest.importorskip("Box2D")

from d2rl.envs import env_facts
from d2rl.envs.carracing import make_vec
from d2rl.episodes import EpisodeTracker


def _cfg(max_steps: int | None, **kwargs):  # type: ignore[no-untyped-def]
    return OmegaConf.create(
        {"id": "CarRacing-v3", "max_episode_steps": max_steps, "vectorization": "sync", "kwargs": kwargs}
    )


def test_continuous_pixels() -> None:
    env = make_vec(_cfg(None), 2)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 3, 96, 96) and obs.dtype == np.uint8
    assert env.single_action_space.shape == (3,)
    obs, r, *_ = env.step(env.action_space.sample())
    assert obs.shape == (2, 3, 96, 96) and r.shape == (2,)
    env.close()


def test_discrete_action_repeat_grayscale_stack_and_episode_statistics() -> None:
    # 20 frames per episode, 4 frames per agent step -> a 5-step episode, then SAME_STEP autoreset
    env = make_vec(_cfg(20, continuous=False, action_repeat=4, grayscale=True, frame_stack=2), 2)
    assert env.single_action_space.n == 5 and env.single_observation_space.shape == (2, 96, 96)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 2, 96, 96)
    tracker = EpisodeTracker(2)
    rewards = np.zeros(2)
    for t in range(5):
        obs, r, te, tr, info = env.step(np.full(2, 3))  # gas
        rewards += r
        tracker.step(r, te | tr, info)
        assert tr.all() == (t == 4)
    assert "final_obs" in info
    assert info["final_obs"][0].shape == (2, 96, 96)
    finished = tracker.drain()
    assert [length for _, length in finished] == [5, 5]
    np.testing.assert_allclose([ret for ret, _ in finished], rewards, rtol=1e-5)
    env.close()


@pytest.mark.parametrize(
    ("kwargs", "frame_stack", "shape"),
    [
        ({}, 1, (3, 96, 96)),  # RGB channels are not a frame stack (this used to crash at step 0)
        ({"frame_stack": 2}, 2, (6, 96, 96)),  # two RGB frames, stored once each
        ({"frame_stack": 3, "grayscale": True}, 3, (3, 96, 96)),
    ],
)
def test_dqn_collection_with_discrete_actions(
    kwargs: dict, frame_stack: int, shape: tuple[int, ...], replay_check
) -> None:  # type: ignore[no-untyped-def]
    env = make_vec(_cfg(None, continuous=False, **kwargs), 1)
    assert env.single_observation_space.shape == shape
    buf, _ = replay_check(env, 40)
    facts = env_facts(env)
    assert facts.pixels and facts.frame_stack == frame_stack and facts.rgb != bool(kwargs.get("grayscale"))
    assert buf.frame_stack == frame_stack
    env.close()
