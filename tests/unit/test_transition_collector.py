"""Off-policy collection: final_obs becomes next_obs at episode ends; no reset transition is stored."""

import gymnasium as gym
import numpy as np
import pytest

from d2rl.buffers.replay import ReplayBuffer
from d2rl.transition_collector import TransitionCollector


def _envs(env_id: str, n: int, **kw) -> gym.vector.VectorEnv:  # type: ignore[no-untyped-def]
    return gym.make_vec(
        env_id,
        num_envs=n,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
        **kw,
    )


def test_two_step_episodes() -> None:
    c = TransitionCollector(_envs("d2rl-probe/TwoStepDiscount-v0", 2), seed=0)
    buf = ReplayBuffer(100, 2, (1,), np.float32, gamma=0.5)
    assert c.collect(buf, 6, lambda obs, t: np.ones(len(obs), np.int64)) == 12
    b = buf.gather(*np.nonzero(buf.valid))
    pairs = sorted(
        zip(
            b["obs"][:, 0].tolist(),
            b["next_obs"][:, 0].tolist(),
            b["reward"].tolist(),
            b["terminated"].tolist(),
            strict=True,
        )
    )
    # obs 0 -> obs 1 (reward 0, continuing); obs 1 -> final obs 1 (reward 1, terminal); never 1 -> 0
    assert pairs == [(0.0, 1.0, 0.0, 0.0)] * 6 + [(1.0, 1.0, 1.0, 1.0)] * 6
    assert c.tracker.episodes == 6 and set(c.timings) == {"env", "act", "store"}


def test_truncated_episodes_keep_their_final_obs() -> None:
    envs = _envs("CartPole-v1", 3, max_episode_steps=5)
    c = TransitionCollector(envs, seed=1)
    buf = ReplayBuffer(200, 3, (4,), np.float32)
    c.collect(buf, 20, lambda obs, t: np.zeros(len(obs), np.int64))
    rows, env_ids = np.nonzero(buf.valid & buf.truncated)
    assert len(rows) == 12  # 4 episodes of 5 steps in each of 3 envs
    b = buf.gather(rows, env_ids)
    assert (b["terminated"] == 0).all() and (b["discount"] > 0).all()
    # the final obs continues the episode (cart position moves by at most a few cm per step) ...
    assert (abs(b["next_obs"][:, 0] - b["obs"][:, 0]) < 0.1).all()
    # ... and is not the next episode's reset obs, which starts the row after it
    reset = buf.obs[(rows + 2) % buf.rows, env_ids]
    assert not np.allclose(b["next_obs"].numpy(), reset)


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
    """Training Breakout ends a learner episode at every life loss and clips rewards; the
    off-policy tracker must count games and report their raw returns, while the replay keeps
    the learner's episodes and clipped rewards (whole stacks here; frame dedup: tests/unit/envs)."""
    pytest.importorskip("ale_py")
    from omegaconf import OmegaConf

    from d2rl.buffers import make_replay
    from d2rl.config import ReplayConfig
    from d2rl.envs import env_facts
    from d2rl.envs.atari import make_vec

    cfg = {"id": "breakout", "max_episode_steps": None, "vectorization": "sync", "kwargs": {}}
    envs = make_vec(OmegaConf.create(cfg), 1)
    recorder = envs.env = _GameRecorder(envs.env)
    buf = make_replay(
        ReplayConfig(kind="uniform", capacity=2000, dedup_frames=False),
        envs.single_observation_space,
        envs.single_action_space,
        1,
        n_step=1,
        gamma=0.99,
        facts=env_facts(envs),
    )
    c = TransitionCollector(envs, seed=0)
    rng = np.random.default_rng(0)
    c.collect(buf, 1500, lambda obs, t: rng.integers(0, 4, len(obs)))
    envs.close()
    finished = c.tracker.drain()
    assert len(recorder.games) >= 2
    assert finished == recorder.games and c.tracker.episodes == len(recorder.games)
    ends = int(buf.terminated.sum())
    assert 5 * len(recorder.games) <= ends < 5 * (len(recorder.games) + 1)  # 5 lives a game
    assert set(np.unique(buf.reward)) <= {0.0, 1.0}  # the learner's rewards stay clipped
