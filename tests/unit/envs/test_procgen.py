"""Procgen suite: shapes, SAME_STEP episode ends, episode statistics and the train/test level split."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

pytest.importorskip("procgen")

from d2rl.envs import EnvFacts, env_facts
from d2rl.envs.procgen import GAMES, make_vec
from d2rl.errors import D2RLError


def _cfg(game: str = "coinrun", **kwargs):  # type: ignore[no-untyped-def]
    return OmegaConf.create(
        {"id": game, "max_episode_steps": None, "vectorization": "sync", "kwargs": kwargs}
    )


def test_random_rollout_shapes_and_episode_statistics() -> None:
    n = 8
    env = make_vec(_cfg(distribution_mode="easy"), n)
    assert env.single_observation_space.shape == (3, 64, 64) and env.single_action_space.n == 15
    obs, _ = env.reset(seed=0)
    assert obs.shape == (n, 3, 64, 64) and obs.dtype == np.uint8
    rng = np.random.default_rng(0)
    ret, length = np.zeros(n), np.zeros(n, dtype=int)
    episodes = []
    for _ in range(1001):  # coinrun ends an episode at the latest after 1000 steps
        obs, r, te, tr, info = env.step(rng.integers(0, 15, n))
        assert obs.shape == (n, 3, 64, 64) and r.dtype == np.float32 and not tr.any()
        ret += r
        length += 1
        if te.any():
            assert "final_obs" in info and info["_episode"].tolist() == te.tolist()
            for i in np.flatnonzero(te):
                assert info["episode"]["r"][i] == ret[i] and info["episode"]["l"][i] == length[i]
                episodes.append(ret[i])
                ret[i], length[i] = 0.0, 0
    assert len(episodes) >= n
    assert set(episodes) <= {0.0, 10.0}  # coinrun: 10 for the coin, else 0


def test_reset_with_the_same_seed_repeats_the_levels() -> None:
    a, b = make_vec(_cfg(), 2), make_vec(_cfg(), 2)
    oa, _ = a.reset(seed=5)
    ob, _ = b.reset(seed=5)
    np.testing.assert_array_equal(oa, ob)
    for _ in range(20):
        oa, *_ = a.step(np.ones(2, dtype=np.int64))
        ob, *_ = b.step(np.ones(2, dtype=np.int64))
    np.testing.assert_array_equal(oa, ob)


def test_train_test_level_split() -> None:
    train = make_vec(_cfg(num_levels=200, start_level=10), 1)
    test = make_vec(_cfg(num_levels=200, start_level=10), 1, evaluation=True)
    same = make_vec(_cfg(num_levels=200, start_level=10, eval_levels="train"), 1, evaluation=True)
    assert (train.start_level, train.num_levels) == (10, 200)
    assert test.start_level == 210 and test.num_levels > 0  # disjoint from the training levels
    assert (same.start_level, same.num_levels) == (10, 200)
    assert len(GAMES) == 16
    with pytest.raises(D2RLError, match="unknown procgen game"):
        make_vec(_cfg("pong"), 1)
    with pytest.raises(D2RLError, match="distribution_mode"):
        make_vec(_cfg(distribution_mode="medium"), 1)


def test_dqn_collection_stores_rgb_frames_whole(replay_check) -> None:  # type: ignore[no-untyped-def]
    """[3, 64, 64] is one RGB frame, not a stack of three: no frame dedup (it used to crash)."""
    env = make_vec(_cfg(), 2)
    buf, _ = replay_check(env, 200)
    assert env_facts(env) == EnvFacts(pixels=True, rgb=True, episode_stats=True)
    assert buf.frame_stack == 1
    env.close()
