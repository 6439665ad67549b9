"""The memory tasks: the cue is visible only at the first step and decides the last reward."""

import gymnasium as gym
import numpy as np
import pytest

import d2rl.envs.memory  # noqa: F401


@pytest.mark.parametrize("length", [2, 10])
def test_memory_cue_rewards_only_the_remembered_answer(length):
    env = gym.make("d2rl/MemoryCue-v0", length=length)
    seen = set()
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        cue = obs[0]
        assert cue in (-1.0, 1.0) and obs[1] == 0.0
        seen.add(cue)
        total, steps, done = 0.0, 0, False
        while not done:
            answer = int(cue > 0)
            obs, r, term, trunc, _ = env.step(answer)
            steps += 1
            done = term or trunc
            if not done:
                assert obs[0] == 0.0  # the cue is gone after the first step
                assert obs[1] == (1.0 if steps == length - 1 else 0.0)
                assert r == 0.0
            total += r
        assert steps == length and total == 1.0
    assert seen == {-1.0, 1.0}
    obs, _ = env.reset(seed=0)
    wrong = 0 if obs[0] > 0 else 1
    for _ in range(length - 1):
        env.step(wrong)
    assert env.step(wrong)[1] == -1.0


def test_memory_cue_rejects_short_length():
    with pytest.raises(ValueError, match="length"):
        gym.make("d2rl/MemoryCue-v0", length=1)


def test_cartpole_positions_hides_velocities():
    env = gym.make("d2rl/CartPolePositions-v0")
    full = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=3)
    ref, _ = full.reset(seed=3)
    assert obs.shape == (2,) and obs.dtype == np.float32
    np.testing.assert_allclose(obs, ref[[0, 2]])
    for _ in range(5):
        obs, *_ = env.step(1)
        ref, *_ = full.step(1)
        np.testing.assert_allclose(obs, ref[[0, 2]], rtol=1e-6)
    assert env.spec.max_episode_steps == 500
