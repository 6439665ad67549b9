"""Atari suite: shapes, SAME_STEP autoreset, life-loss episodes and unclipped whole-game statistics."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

pytest.importorskip("ale_py")

from d2rl.envs import EnvFacts, env_facts
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
        life_loss = info.get("life_loss", np.zeros(n, bool))
        game_over = np.asarray(info.get("_episode", np.zeros(n, bool)))
        np.testing.assert_array_equal(te | tr, life_loss | game_over)  # learner ends: both kinds
        assert not (life_loss & game_over).any()
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


@pytest.mark.parametrize("backend", ["native", "gymnasium"])
@pytest.mark.parametrize(("max_steps", "max_frames", "cut"), [(25, None, 25), (None, 50, 13)])
def test_time_limit_cuts_both_backends_at_the_same_agent_step(
    backend: str, max_steps: int | None, max_frames: int | None, cut: int
) -> None:
    """The frame cap counts frames after the reset's no-ops (ale-py's native rule) on both
    backends: 25 agent steps = 100 frames; 50 frames end inside agent step 13."""
    cfg = _cfg("pong", backend=backend, **({"max_episode_frames": max_frames} if max_frames else {}))
    cfg.max_episode_steps = max_steps
    env = make_vec(cfg, 2, evaluation=True)
    env.reset(seed=0)
    for _ in range(cut - 1):
        _, _, te, tr, info = env.step(np.zeros(2, dtype=np.int64))
        assert not (te | tr).any()
    _, _, te, tr, info = env.step(np.zeros(2, dtype=np.int64))
    assert tr.all() and not te.any()
    assert list(info["episode"]["l"]) == [cut, cut]
    env.close()


@pytest.mark.parametrize("evaluation", [False, True])
@pytest.mark.parametrize("backend", ["native", "gymnasium"])
def test_fire_after_every_life_loss_ends_a_noop_game(backend: str, evaluation: bool) -> None:
    """Breakout needs FIRE to serve each ball: a NOOP-only policy must still lose all 5 lives
    (FIRE is pressed at reset and after each life loss) long before the 108k-frame cap."""
    env = make_vec(_cfg(backend=backend), 1, evaluation=evaluation)
    env.reset(seed=0)
    life_losses = 0
    for _ in range(2000):
        _, _, te, tr, info = env.step(np.zeros(1, dtype=np.int64))
        life_losses += int(info.get("life_loss", np.zeros(1, bool)).sum())
        if "episode" in info and info["_episode"][0]:
            break
    env.close()
    assert "episode" in info and te[0] and not tr[0], "no game over in 2000 NOOP steps: FIRE not pressed"
    assert life_losses == 4  # the fifth loss ends the game


@pytest.mark.parametrize("backend", ["native", "gymnasium"])
def test_dqn_collection_into_a_frame_dedup_replay(backend: str, replay_check) -> None:  # type: ignore[no-untyped-def]
    """The default (dqn) protocol ends learner episodes at life losses while the frame stack runs
    on; the dedup replay must store and rebuild those stacks (it used to stop with 'padded neither
    by the reset frame nor by zeros' at the first life loss)."""
    env = make_vec(_cfg(backend=backend), 1)
    buf, collector = replay_check(env, 3000)
    assert env_facts(env) == EnvFacts(pixels=True, frame_stack=4, lives=True, episode_stats=True)
    assert buf.frame_stack == 4
    assert collector.tracker.episodes >= 2  # whole games
    assert buf.terminated.sum() >= 5 * collector.tracker.episodes  # life losses end learner episodes
    env.close()


def test_facts_follow_the_options() -> None:
    env = make_vec(_cfg(protocol="machado", frame_stack=2), 1, evaluation=False)
    assert env_facts(env) == EnvFacts(pixels=True, frame_stack=2, lives=False, episode_stats=True)
    env.close()
    env = make_vec(_cfg(), 1, evaluation=True)  # evaluation envs play whole games
    assert env_facts(env).lives is False
    env.close()


def _rollout(env, actions: np.ndarray) -> list[tuple[np.ndarray, ...]]:  # type: ignore[no-untyped-def]
    out = []
    for a in actions:
        obs, rew, term, trunc, info = env.step(a)
        out.append((obs.copy(), rew.copy(), term.copy(), trunc.copy(), np.asarray(info.get("life_loss", False))))
    return out


@pytest.mark.parametrize("game, extra", [("breakout", {}), ("pong", {"grayscale": False})])
def test_gymnasium_backend_state_saves_and_restores_exactly(game: str, extra: dict) -> None:
    """checkpoint.env_state of the gymnasium backend (the emulator with its RNG, sticky actions on,
    the wrappers' frame stacks, no-op RNG, life and FIRE tracking) survives a weights-only round
    trip into freshly made envs, which then continue exactly; an env that only got the same seed
    later does not."""
    import io

    import torch

    from d2rl import checkpoint

    cfg = _cfg(game, backend="gymnasium", repeat_action_probability=0.25, **extra)
    n = 2
    a = make_vec(cfg, n)
    a.reset(seed=5)
    a.action_space.seed(5)
    rng = np.random.default_rng(1)
    _rollout(a, rng.integers(0, a.single_action_space.n, (150, n)))
    state = checkpoint.env_state(a)
    assert state is not None and "vector_wrappers" in state
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    actions = rng.integers(0, a.single_action_space.n, (700, n))
    expected = _rollout(a, actions)

    b = make_vec(cfg, n)
    b.reset(seed=77)
    assert checkpoint.set_env_state(b, state)
    got = _rollout(b, actions)
    for t, (x, y) in enumerate(zip(expected, got, strict=True)):
        for u, v in zip(x, y, strict=True):
            np.testing.assert_array_equal(u, v, err_msg=f"step {t}")
    assert any(e[1].any() for e in expected)  # points were scored
    if game == "breakout":  # a game with lives: life losses (episode ends for the learner)
        assert any(e[4].any() for e in expected) and any(e[2].any() for e in expected)

    c = make_vec(cfg, n)  # the same seed but not the saved state: a different continuation
    c.reset(seed=5)
    other = _rollout(c, actions[:50])
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(expected[:50], other, strict=True))


def test_native_backend_has_no_savable_state() -> None:
    """ale-py's C++ vector env cannot clone its games: resume starts fresh episodes there."""
    from d2rl import checkpoint

    env = make_vec(_cfg(backend="native"), 1)
    env.reset(seed=0)
    assert checkpoint.env_state(env) is None
