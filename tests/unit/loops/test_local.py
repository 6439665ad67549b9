"""The Loop's autoreset semantics: no reset step ever enters a transition or a rollout; time-limit
cuts keep their real final observation (and bootstrap from it); episodes are whole games."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from d2rl.algorithms.on_policy import advantages
from d2rl.buffers.replay import ReplayBuffer
from d2rl.buffers.rollout import RolloutStorage
from d2rl.core import Policy, ReplaySchedule, RolloutSchedule
from d2rl.loops.local import LocalLoop


class ConstantPolicy(Policy):
    """Always ``action``; extras ``logprob`` 0 and ``value`` ``value`` (for on-policy storage)."""

    def __init__(self, action: int, value: float = 0.0, num_actions: int = 2) -> None:
        super().__init__()
        self.action, self.v, self.random = action, value, action < 0
        self.num_actions = num_actions

    def act(self, obs, state=None, explore=True, env_step=0):  # type: ignore[no-untyped-def]
        n = obs.shape[0]
        a = torch.randint(0, self.num_actions, (n,)) if self.random else torch.full((n,), self.action)
        return a, {"logprob": torch.zeros(n), "value": torch.full((n,), self.v)}, state

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.full((obs.shape[0],), self.v)


def _envs(env_id: str, n: int, **kw: Any) -> gym.vector.VectorEnv:
    return gym.make_vec(env_id, num_envs=n, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}, **kw)  # fmt: skip


def _rollout_loop(envs: gym.vector.VectorEnv, T: int, policy: Policy, obs_shape: tuple[int, ...] = (1,),
                  obs_dtype: torch.dtype = torch.float32, episode_stats: bool = False) -> LocalLoop:  # fmt: skip
    storage = RolloutStorage(T, envs.num_envs, obs_shape, obs_dtype, (), torch.long,
                             {"logprob": ((), torch.float32), "value": ((), torch.float32)})  # fmt: skip
    loop = LocalLoop(envs, policy, storage, RolloutSchedule(T), 10**9, seed=0, episode_stats=episode_stats)
    loop.start()
    return loop


def test_rollout_of_two_step_episodes_holds_only_real_steps() -> None:
    loop = _rollout_loop(_envs("d2rl-probe/TwoStepDiscount-v0", 2), 6, ConstantPolicy(1))
    r = loop.collect_round()
    assert loop.env_steps == 12
    d = r.data  # type: ignore[union-attr]
    # obs 0 -> reward 0 -> obs 1 -> reward 1, done -> next episode's obs 0 ...; never a reset step
    np.testing.assert_array_equal(d["obs"][:, :, 0].numpy(), [[0, 0], [1, 1]] * 3)
    np.testing.assert_array_equal(d["reward"].numpy(), [[0, 0], [1, 1]] * 3)
    np.testing.assert_array_equal(d["terminated"].numpy(), [[False, False], [True, True]] * 3)
    np.testing.assert_array_equal(d["first"].numpy(), [[True, True], [False, False]] * 3)
    assert loop.tracker.episodes == 6 and [ret for ret, _ in loop.tracker.drain()] == [1.0] * 6


def test_truncation_bootstraps_from_the_final_obs_and_termination_does_not() -> None:
    # TwoStepDiscount cut at 1 step by a time limit: the cut is bootstrapped with gamma * V(final_obs)
    policy = ConstantPolicy(1, value=3.0)
    loop = _rollout_loop(_envs("d2rl-probe/TwoStepDiscount-v0", 1, max_episode_steps=1), 3, policy)
    r = loop.collect_round()
    assert r.final_obs is not None and r.final_obs.shape == (3, 1)  # type: ignore[union-attr]
    _, ret = advantages(r, policy, gamma=0.5, gae_lambda=1.0)  # type: ignore[arg-type]
    np.testing.assert_allclose(ret[:, 0].numpy(), [1.5, 1.5, 1.5])  # 0 + 0.5 * 3.0, no further bootstrap
    loop2 = _rollout_loop(_envs("d2rl-probe/ConstantReward-v0", 1), 3, policy)
    r2 = loop2.collect_round()
    _, ret2 = advantages(r2, policy, gamma=0.5, gae_lambda=1.0)  # type: ignore[arg-type]
    np.testing.assert_allclose(ret2[:, 0].numpy(), [1.0, 1.0, 1.0])  # terminated: no bootstrap


def test_uint8_observations_stay_uint8_in_rollouts() -> None:
    storage = RolloutStorage(2, 3, (4, 8, 8), torch.uint8, (), torch.long)
    assert storage.data["obs"].dtype == torch.uint8


def _replay_loop(
    envs: gym.vector.VectorEnv, vector_steps: int, policy: Policy, buf: ReplayBuffer
) -> LocalLoop:
    schedule = ReplaySchedule(8, learning_starts_env_steps=0, round_env_steps=vector_steps * envs.num_envs,
                              gradient_steps_per_env_step=0.0)  # fmt: skip
    loop = LocalLoop(envs, policy, buf, schedule, 10**9, seed=1)
    loop.start()
    return loop


def test_replay_of_two_step_episodes() -> None:
    buf = ReplayBuffer(100, 2, (1,), np.float32, gamma=0.5)
    loop = _replay_loop(_envs("d2rl-probe/TwoStepDiscount-v0", 2), 6, ConstantPolicy(1), buf)
    loop.collect_round()
    assert loop.env_steps == 12
    b = buf.gather(*np.nonzero(buf.valid))
    pairs = sorted(zip(b["obs"][:, 0].tolist(), b["next_obs"][:, 0].tolist(), b["reward"].tolist(),
                       b["terminated"].tolist(), strict=True))  # fmt: skip
    # obs 0 -> obs 1 (reward 0, continuing); obs 1 -> final obs 1 (reward 1, terminal); never 1 -> 0
    assert pairs == [(0.0, 1.0, 0.0, 0.0)] * 6 + [(1.0, 1.0, 1.0, 1.0)] * 6
    assert loop.tracker.episodes == 6


def test_replay_keeps_the_final_obs_of_truncated_episodes() -> None:
    buf = ReplayBuffer(200, 3, (4,), np.float32)
    loop = _replay_loop(_envs("CartPole-v1", 3, max_episode_steps=5), 20, ConstantPolicy(0), buf)
    loop.collect_round()
    rows, env_ids = np.nonzero(buf.valid & buf.truncated)
    assert len(rows) == 12  # 4 episodes of 5 steps in each of 3 envs
    b = buf.gather(rows, env_ids)
    assert (b["terminated"] == 0).all() and (b["discount"] > 0).all()
    # the final obs continues the episode (the cart moves by at most a few cm per step) ...
    assert (abs(b["next_obs"][:, 0] - b["obs"][:, 0]) < 0.1).all()
    # ... and is not the next episode's reset obs, which starts the row after it
    assert not np.allclose(b["next_obs"].numpy(), buf.obs[(rows + 2) % buf.rows, env_ids])


def test_random_warm_up_before_learning_starts_is_seeded() -> None:
    acts = []
    for _ in range(2):
        envs = _envs("CartPole-v1", 2)
        schedule = ReplaySchedule(
            8, learning_starts_env_steps=100, round_env_steps=20, gradient_steps_per_env_step=1.0
        )
        buf = ReplayBuffer(100, 2, (4,), np.float32)
        loop = LocalLoop(envs, ConstantPolicy(0), buf, schedule, 200, seed=3)
        loop.start()
        batches = loop.collect_round()
        assert batches.count == 0  # type: ignore[union-attr]  # no update before learning starts
        acts.append(buf.action[:10].copy())
    assert acts[0].any() and np.array_equal(acts[0], acts[1])


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


@pytest.mark.parametrize("schedule", ["rollout", "replay"])
def test_breakout_episodes_are_whole_unclipped_games(schedule: str) -> None:
    """Training Breakout ends a learner episode at every life loss and clips rewards; the Loop's
    tracker must still count games and report their raw returns, for both schedules."""
    pytest.importorskip("ale_py")
    from omegaconf import OmegaConf

    from d2rl.envs import env_facts
    from d2rl.envs.atari import make_vec

    cfg = {"id": "breakout", "max_episode_steps": None, "vectorization": "sync", "kwargs": {}}
    envs = make_vec(OmegaConf.create(cfg), 1)
    recorder = envs.env = _GameRecorder(envs.env)
    torch.manual_seed(0)
    policy = ConstantPolicy(-1, num_actions=4)
    stats = env_facts(envs).episode_stats
    if schedule == "rollout":
        loop = _rollout_loop(envs, 250, policy, (4, 84, 84), torch.uint8, episode_stats=stats)
    else:
        buf = ReplayBuffer(2000, 1, (4, 84, 84), np.uint8, frame_stack=4)
        loop = _replay_loop(envs, 250, policy, buf)
        loop.tracker.episode_stats = stats
    finished: list[tuple[float, int]] = []
    learner_ends = 0
    for _ in range(6):
        item: Any = loop.collect_round()
        finished += loop.tracker.drain()
        if schedule == "rollout":
            learner_ends += int(item.data["terminated"].sum() + item.data["truncated"].sum())
    envs.close()
    assert len(recorder.games) >= 2
    assert finished == recorder.games and loop.tracker.episodes == len(recorder.games)
    if schedule == "rollout":
        assert 5 * len(recorder.games) <= learner_ends < 5 * (len(recorder.games) + 1)  # 5 lives a game
