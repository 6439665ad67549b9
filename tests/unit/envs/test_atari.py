"""Atari suite: shapes, SAME_STEP autoreset, life-loss episodes and unclipped whole-game statistics."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

pytest.importorskip("ale_py")

from d2rl.envs.atari import make_vec, parse_options, rom_name
from d2rl.errors import D2RLError


def _cfg(game: str = "breakout", **kwargs):  # type: ignore[no-untyped-def]
    return OmegaConf.create(
        {"id": game, "max_episode_steps": None, "vectorization": "sync", "kwargs": kwargs}
    )


def test_rom_names_and_options() -> None:
    assert [rom_name(n) for n in ("pong", "Pong", "ALE/MsPacman-v5", "ms_pacman", "BeamRider")] == [
        "pong",
        "pong",
        "ms_pacman",
        "ms_pacman",
        "beam_rider",
    ]
    dqn, machado = parse_options({}), parse_options({"protocol": "machado"})
    assert (dqn.noop_max, dqn.repeat_action_probability, dqn.episodic_life) == (30, 0.0, True)
    assert (machado.noop_max, machado.repeat_action_probability, machado.episodic_life) == (0, 0.25, False)
    assert parse_options({"protocol": "machado", "episodic_life": True}).episodic_life is True
    with pytest.raises(D2RLError, match="unknown atari option"):
        parse_options({"sticky": 0.25})
    with pytest.raises(D2RLError, match="unknown Atari game"):
        make_vec(_cfg("not_a_game"), 1)


@pytest.mark.parametrize("backend", ["native", "gymnasium"])
def test_training_env_vs_whole_games(backend: str) -> None:
    """The same seeds and actions in a training env (episodic life, clipped rewards) and an
    evaluation env (whole games, raw rewards): the training env's info["episode"] must report
    exactly the evaluation env's games, and its learner episodes must end at each life loss."""
    n = 2
    train_env = make_vec(_cfg(backend=backend), n)
    eval_env = make_vec(_cfg(backend=backend), n, evaluation=True)
    assert train_env.single_observation_space.shape == (4, 84, 84)
    assert train_env.single_observation_space.dtype == np.uint8
    obs, _ = train_env.reset(seed=3)
    obs_e, _ = eval_env.reset(seed=3)
    assert obs.shape == (n, 4, 84, 84) and obs.dtype == np.uint8
    np.testing.assert_array_equal(obs, obs_e)
    rng = np.random.default_rng(0)
    game_return, game_len = np.zeros(n), np.zeros(n, dtype=int)
    games_eval: list[tuple[int, float, int]] = []
    games_train: list[tuple[int, float, int]] = []
    learner_ends = 0
    for _ in range(1500):
        a = rng.integers(0, train_env.single_action_space.n, n)
        obs, r, te, tr, info = train_env.step(a)
        obs_e, r_e, te_e, tr_e, _ = eval_env.step(a)
        np.testing.assert_array_equal(obs, obs_e)  # the game is the same: a life loss resets nothing
        assert r.dtype == np.float32 and te.dtype == np.bool_ and set(np.unique(r)) <= {-1.0, 0.0, 1.0}
        np.testing.assert_array_equal(r, np.sign(r_e))
        game_return += r_e
        game_len += 1
        for i in np.flatnonzero(te_e | tr_e):
            games_eval.append((i, game_return[i], game_len[i]))
            game_return[i], game_len[i] = 0.0, 0
        if (te | tr).any():
            learner_ends += int((te | tr).sum())
            assert "final_obs" in info
            for i in np.flatnonzero(te | tr):
                assert info["final_obs"][i].shape == (4, 84, 84)
        if "episode" in info:
            for i in np.flatnonzero(info["_episode"]):
                games_train.append((i, float(info["episode"]["r"][i]), int(info["episode"]["l"][i])))
        if len(games_eval) >= 2:
            break
    assert len(games_eval) >= 2, "random play should lose a Breakout game within 1500 steps"
    assert games_train == [(i, float(r), int(n)) for i, r, n in games_eval]
    assert learner_ends >= 5 * len(games_eval)  # Breakout: 5 lives per game
    train_env.close()
    eval_env.close()


def test_time_limit_truncates_in_agent_steps() -> None:
    cfg = _cfg("pong")
    cfg.max_episode_steps = 25
    env = make_vec(cfg, 2, evaluation=True)
    env.reset(seed=0)
    for _ in range(24):
        _, _, te, tr, info = env.step(np.zeros(2, dtype=np.int64))
        assert not (te | tr).any()
    _, _, te, tr, info = env.step(np.zeros(2, dtype=np.int64))
    assert tr.all() and not te.any()
    assert list(info["episode"]["l"]) == [25, 25]
    env.close()
