"""Autoreset semantics: no reset step ever enters a transition; truncations bootstrap."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from d2rl.buffers.rollout import RolloutBuffer
from d2rl.collector import RolloutCollector


def _collector(env_id: str, num_envs: int, value: float = 0.0, gamma: float = 0.5, **kw):  # type: ignore[no-untyped-def]
    envs = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
        **kw,
    )

    def act(obs: torch.Tensor):  # type: ignore[no-untyped-def]
        n = obs.shape[0]
        return torch.ones(n, dtype=torch.long), torch.zeros(n), torch.full((n,), value)

    return RolloutCollector(
        envs, act, lambda o: torch.full((o.shape[0],), value), lambda o, u: o, None, gamma, 0
    )


def test_two_step_episodes_store_only_real_transitions() -> None:
    c = _collector("d2rl-probe/TwoStepDiscount-v0", 2)
    buf = RolloutBuffer(6, 2, (1,), (), torch.long)
    assert c.collect(buf) == 12
    # obs 0 -> reward 0 -> obs 1 -> reward 1, done -> next episode's obs 0 ...; never a reset step
    np.testing.assert_array_equal(buf.obs[:, :, 0].numpy(), [[0, 0], [1, 1]] * 3)
    np.testing.assert_array_equal(buf.reward.numpy(), [[0, 0], [1, 1]] * 3)
    np.testing.assert_array_equal(buf.done.numpy(), [[False, False], [True, True]] * 3)
    assert c.tracker.episodes == 6
    assert [r for r, _ in c.tracker.drain()] == [1.0] * 6


def test_truncation_bootstraps_from_the_final_obs_and_termination_does_not() -> None:
    # TwoStepDiscount cut at 1 step by a time limit: the cut is bootstrapped with gamma * V(final_obs)
    c = _collector("d2rl-probe/TwoStepDiscount-v0", 1, value=3.0, gamma=0.5, max_episode_steps=1)
    buf = RolloutBuffer(3, 1, (1,), (), torch.long)
    c.collect(buf)
    np.testing.assert_allclose(buf.reward[:, 0].numpy(), [1.5, 1.5, 1.5])  # 0 + 0.5 * 3.0
    assert buf.done.all()
    c2 = _collector("d2rl-probe/ConstantReward-v0", 1, value=3.0, gamma=0.5)
    buf2 = RolloutBuffer(3, 1, (1,), (), torch.long)
    c2.collect(buf2)
    np.testing.assert_allclose(buf2.reward[:, 0].numpy(), [1.0, 1.0, 1.0])  # terminated: no bootstrap


def test_tracker_with_episode_stats_counts_only_the_envs_episodes() -> None:
    from d2rl.episodes import EpisodeTracker

    t = EpisodeTracker(2, episode_stats=True)
    # a learner episode ends without info["episode"] (a life loss): no episode, whatever the rewards
    t.step(np.array([1.0, 1.0]), np.array([True, False]), {})
    assert t.drain() == [] and t.episodes == 0
    t.step(
        np.array([1.0, 1.0]),
        np.array([True, True]),
        {"episode": {"r": np.array([0, 57.0]), "l": np.array([0, 9])}, "_episode": np.array([False, True])},
    )
    # env 0's learner episode ended (a life loss) but its game goes on: no finished episode for it
    assert t.drain() == [(57.0, 9)]
    assert t.episodes == 1
    np.testing.assert_array_equal(t.returns, [0.0, 0.0])  # learner episodes restart at done
    np.testing.assert_array_equal(t.lengths, [0, 0])


def test_tracker_without_episode_stats_sums_the_rewards() -> None:
    from d2rl.episodes import EpisodeTracker

    t = EpisodeTracker(2)
    t.step(np.array([1.0, 2.0]), np.array([False, False]))
    t.step(np.array([1.0, 2.0]), np.array([True, False]), {"episode": {"r": [9.0, 9.0], "l": [9, 9]}})
    assert t.drain() == [(2.0, 2)] and t.episodes == 1
    assert t.recent_mean() == 2.0


def test_uint8_observations_stay_uint8_in_the_buffer() -> None:
    buf = RolloutBuffer(2, 3, (4, 8, 8), (), torch.long, obs_dtype=torch.uint8)
    assert buf.obs.dtype == torch.uint8
    assert buf.flat()["obs"].shape == (6, 4, 8, 8)


class _GameRecorder(gym.vector.VectorWrapper):
    """Sits under the Atari suite's training wrapper: sees raw rewards and whole games."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        self.ret, self.len = np.zeros(env.num_envs), np.zeros(env.num_envs, dtype=int)
        self.games: list[tuple[float, int]] = []

    def step(self, actions):  # type: ignore[no-untyped-def]
        obs, reward, terminated, truncated, info = self.env.step(actions)
        self.ret += reward
        self.len += 1
        for i in np.flatnonzero(terminated | truncated):
            self.games.append((float(self.ret[i]), int(self.len[i])))
            self.ret[i], self.len[i] = 0.0, 0
        return obs, reward, terminated, truncated, info


def test_breakout_episodes_are_whole_unclipped_games() -> None:
    """Training Breakout ends a learner episode at every life loss and clips rewards; the tracker
    must still count games and report their raw returns."""
    pytest.importorskip("ale_py")
    from omegaconf import OmegaConf

    from d2rl.envs.atari import make_vec

    cfg = {"id": "breakout", "max_episode_steps": None, "vectorization": "sync", "kwargs": {}}
    envs = make_vec(OmegaConf.create(cfg), 1)
    recorder = envs.env = _GameRecorder(envs.env)

    def act(obs: torch.Tensor):  # type: ignore[no-untyped-def]
        n = obs.shape[0]
        return torch.randint(0, 4, (n,)), torch.zeros(n), torch.zeros(n)

    torch.manual_seed(0)
    c = RolloutCollector(envs, act, lambda o: torch.zeros(o.shape[0]), lambda o, u: o, None, 0.99, 0)
    buf = RolloutBuffer(250, 1, (4, 84, 84), (), torch.long, obs_dtype=torch.uint8)
    finished: list[tuple[float, int]] = []
    learner_ends = 0
    for _ in range(6):
        c.collect(buf)
        finished += c.tracker.drain()
        learner_ends += int(buf.done.sum())
    envs.close()
    assert len(recorder.games) >= 2
    assert finished == recorder.games and c.tracker.episodes == len(recorder.games)
    assert 5 * len(recorder.games) <= learner_ends < 5 * (len(recorder.games) + 1)  # 5 lives a game
