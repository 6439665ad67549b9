"""Uniform replay: n-step returns by hand across terminations/truncations, frame dedup, ring, state."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from d2rl.buffers.replay import ReplayBuffer


def _fill(buf: ReplayBuffer, steps: list[tuple[float, float, bool, bool]], first_action: int = 0) -> None:
    """One env; each step (obs, reward, terminated, truncated); obs of the next row follows.

    The final obs of an ended episode is ``obs + 100`` so it is recognisable.
    """
    for i, (o, r, term, trunc) in enumerate(steps):
        ended = term or trunc
        nxt = o + 100 if ended else (steps[i + 1][0] if i + 1 < len(steps) else o + 1)
        buf.add(
            np.array([[o]], np.float32),
            np.array([first_action + i]),
            np.array([r], np.float32),
            np.array([[nxt]], np.float32),
            np.array([term]),
            np.array([trunc]),
        )


def _by_action(buf: ReplayBuffer) -> dict[int, dict[str, float]]:
    rows = np.flatnonzero(buf.valid[:, 0])
    batch = buf.gather(rows, np.zeros_like(rows))
    return {
        int(a): {
            k: float(batch[k][i].reshape(-1)[0])
            for k in ("obs", "reward", "next_obs", "terminated", "discount")
        }
        for i, a in enumerate(batch["action"])
    }


def test_three_step_returns_by_hand() -> None:
    g = 0.5
    buf = ReplayBuffer(64, 1, (1,), np.float32, n_step=3, gamma=g)
    # episode A: obs 0,1,2 with rewards 1,2,3, terminates at obs 2
    # episode B: obs 10,11,12,13 with rewards 1,1,1,1, truncated at obs 13
    # episode C: obs 20,21 rewards 5,7, still running (the head)
    _fill(
        buf,
        [
            (0, 1, False, False),
            (1, 2, False, False),
            (2, 3, True, False),
            (10, 1, False, False),
            (11, 1, False, False),
            (12, 1, False, False),
            (13, 1, False, True),
            (20, 5, False, False),
            (21, 7, False, False),
        ],
    )
    t = _by_action(buf)
    # A: full 3 steps reach the terminal; no bootstrap
    assert t[0] == pytest.approx(
        {"obs": 0, "reward": 1 + g * 2 + g * g * 3, "next_obs": 102, "terminated": 1, "discount": g**3}
    )
    assert t[1] == pytest.approx(
        {"obs": 1, "reward": 2 + g * 3, "next_obs": 102, "terminated": 1, "discount": g**2}
    )
    assert t[2] == pytest.approx({"obs": 2, "reward": 3, "next_obs": 102, "terminated": 1, "discount": g})
    # B: a 3-step return that stays inside the episode, then ones cut by the truncation (bootstrap)
    assert t[3] == pytest.approx(
        {"obs": 10, "reward": 1 + g + g * g, "next_obs": 13, "terminated": 0, "discount": g**3}
    )
    assert t[4] == pytest.approx(
        {"obs": 11, "reward": 1 + g + g * g, "next_obs": 113, "terminated": 0, "discount": g**3}
    )
    assert t[5] == pytest.approx(
        {"obs": 12, "reward": 1 + g, "next_obs": 113, "terminated": 0, "discount": g**2}
    )
    assert t[6] == pytest.approx({"obs": 13, "reward": 1, "next_obs": 113, "terminated": 0, "discount": g})
    # C: the newest transitions use as many steps as exist so far (a shorter but exact return)
    assert t[7] == pytest.approx(
        {"obs": 20, "reward": 5 + g * 7, "next_obs": 22, "terminated": 0, "discount": g**2}
    )
    assert t[8] == pytest.approx({"obs": 21, "reward": 7, "next_obs": 22, "terminated": 0, "discount": g})
    assert len(buf) == 9


def test_one_step_next_obs_is_final_obs_and_no_reset_transition() -> None:
    buf = ReplayBuffer(64, 1, (1,), np.float32, n_step=1, gamma=0.9)
    _fill(buf, [(0, 0, False, False), (1, 1, True, False), (10, 0, False, True), (20, 0, False, False)])
    t = _by_action(buf)
    assert [t[i]["next_obs"] for i in range(4)] == [1, 101, 110, 21]
    assert [t[i]["terminated"] for i in range(4)] == [0, 1, 0, 0]
    assert len(buf) == 4  # the final-obs rows start no transition


def test_multiple_envs_are_independent_and_sampling_is_uniform() -> None:
    buf = ReplayBuffer(1000, 3, (2,), np.float32, n_step=2, gamma=0.9, seed=0)
    rng = np.random.default_rng(0)
    for step in range(100):
        obs = np.full((3, 2), step, np.float32) + np.arange(3)[:, None] * 1000
        term = rng.random(3) < 0.1
        buf.add(obs, np.arange(3), np.ones(3, np.float32), obs + 1, term, np.zeros(3, bool))
    assert len(buf) == int(buf.valid.sum()) == 300
    batch = buf.sample(20_000)
    env = (batch["obs"][:, 0] // 1000).long()
    # obs of env e always come from env e, and next obs is 1 or 2 steps later in the same env
    assert torch.equal(env, batch["action"])
    gap = batch["next_obs"][:, 0] - batch["obs"][:, 0]
    assert set(gap.tolist()) <= {1.0, 2.0}
    counts = torch.bincount(env, minlength=3).float() / 20_000
    assert counts.tolist() == pytest.approx([1 / 3] * 3, abs=0.02)


def test_ring_overwrites_oldest_and_keeps_n_step_consistent() -> None:
    buf = ReplayBuffer(16, 1, (1,), np.float32, n_step=3, gamma=0.5, seed=1)
    _fill(buf, [(float(i), float(i), False, False) for i in range(200)])
    batch = buf.sample(512)
    obs, nxt = batch["obs"][:, 0], batch["next_obs"][:, 0]
    assert obs.min() >= 200 - buf.rows
    steps = (nxt - obs).long()
    assert set(steps.tolist()) <= {1, 2, 3}
    expected = sum(0.5**j * (obs + j) * (steps > j) for j in range(3))
    torch.testing.assert_close(batch["reward"], expected.float())
    torch.testing.assert_close(batch["discount"], 0.5 ** steps.float())


@pytest.mark.parametrize("padding", ["reset", "zero"])
def test_frame_stack_is_rebuilt_from_single_frames(padding: str) -> None:
    """Against gymnasium's own FrameStackObservation (both paddings) on a counting env."""

    class Counter(gym.Env):
        observation_space = gym.spaces.Box(0, 255, (2, 2), np.uint8)
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):  # type: ignore[no-untyped-def]
            super().reset(seed=seed)
            self.t = int(self.np_random.integers(0, 50))
            return np.full((2, 2), self.t, np.uint8), {}

        def step(self, action):  # type: ignore[no-untyped-def]
            self.t += 1
            return np.full((2, 2), self.t, np.uint8), 1.0, bool(self.np_random.random() < 0.2), False, {}

    env = gym.wrappers.FrameStackObservation(Counter(), 4, padding_type=padding)
    buf = ReplayBuffer(64, 1, (4, 2, 2), np.uint8, n_step=1, frame_stack=4, seed=0)
    truth: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    obs, _ = env.reset(seed=0)
    for i in range(300):
        nxt, r, term, trunc, _ = env.step(0)
        buf.add(
            obs[None],
            np.array([i]),
            np.array([r], np.float32),
            nxt[None],
            np.array([term]),
            np.array([trunc]),
        )
        truth[i] = (obs.copy(), nxt.copy())
        obs = env.reset()[0] if term or trunc else nxt
    batch = buf.sample(256)
    for i, a in enumerate(batch["action"].tolist()):
        np.testing.assert_array_equal(batch["obs"][i].numpy(), truth[a][0])
        np.testing.assert_array_equal(batch["next_obs"][i].numpy(), truth[a][1])
    assert batch["obs"].dtype == torch.uint8
    # one 2x2 frame per row, not four: obs bytes per transition ~ 4 (plus episode-end rows)
    assert buf.obs.nbytes / buf.obs.shape[0] == 4


def test_atari_bytes_per_transition() -> None:
    """A [4, 84, 84] uint8 stack costs one 84x84 frame per transition plus ~30 bytes of bookkeeping."""
    buf = ReplayBuffer(1000, 1, (4, 84, 84), np.uint8, frame_stack=4)
    per = buf.nbytes / buf.rows
    assert 84 * 84 <= per < 84 * 84 + 40
    full = ReplayBuffer(1000, 1, (4, 84, 84), np.uint8, frame_stack=1)
    assert full.nbytes / full.rows > 4 * 84 * 84


def test_state_dict_round_trip() -> None:
    a = ReplayBuffer(32, 2, (3,), np.float32, action_shape=(2,), action_dtype=np.float32, n_step=2, seed=0)
    for t in range(40):
        o = np.full((2, 3), t, np.float32)
        a.add(
            o,
            np.full((2, 2), t, np.float32),
            np.ones(2, np.float32),
            o + 1,
            np.array([t % 7 == 0, False]),
            np.zeros(2, bool),
        )
    b = ReplayBuffer(32, 2, (3,), np.float32, action_shape=(2,), action_dtype=np.float32, n_step=2, seed=0)
    state = a.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    b.load_state_dict(state)
    rows, envs = a.sample_ids(64)
    for k, v in a.gather(rows, envs).items():
        torch.testing.assert_close(v, b.gather(rows, envs)[k])
    with pytest.raises(ValueError, match="shape"):
        ReplayBuffer(64, 2, (3,), np.float32).load_state_dict(state)


def test_cut_episodes_truncates_running_episodes() -> None:
    buf = ReplayBuffer(64, 1, (1,), np.float32, n_step=3, gamma=0.5)
    _fill(buf, [(0, 1, False, False), (1, 1, False, False)])
    buf.cut_episodes()  # e.g. on resume: the envs restart from resets
    _fill(buf, [(50, 4, False, False), (51, 4, False, False)], first_action=2)
    t = _by_action(buf)
    assert t[0] == pytest.approx({"obs": 0, "reward": 1.5, "next_obs": 2, "terminated": 0, "discount": 0.25})
    assert t[1] == pytest.approx({"obs": 1, "reward": 1, "next_obs": 2, "terminated": 0, "discount": 0.5})
    assert len(buf) == 4
    assert t[2] == pytest.approx({"obs": 50, "reward": 6, "next_obs": 52, "terminated": 0, "discount": 0.25})


def test_unknown_frame_padding_is_refused() -> None:
    buf = ReplayBuffer(64, 1, (2, 1, 1), np.uint8, frame_stack=2)
    obs = np.array([[[[3]], [[5]]]], np.uint8)  # older frame is neither 0 nor the newest frame
    with pytest.raises(ValueError, match="dedup_frames=false"):
        buf.add(obs, np.zeros(1), np.zeros(1, np.float32), obs, np.zeros(1, bool), np.zeros(1, bool))


@pytest.mark.parametrize("prioritized", [False, True])
@pytest.mark.parametrize("channels", [1, 3])
def test_life_loss_keeps_the_frame_stack_and_stops_bootstrapping(channels: int, prioritized: bool) -> None:
    """A life loss ends the learner episode (terminated) while the game's frame stack runs on.

    Synthetic game: frame t is filled with t; a stack is the last 4 frames (a new game pads with
    its first frame). Life losses (``frames_continue``) and game overs both terminate; the ring
    (128 rows) wraps. Every sampled transition must match the stacks and 3-step returns by hand.
    """
    from d2rl.buffers.prioritized import PrioritizedReplayBuffer

    k, n_step, g = 4, 3, 0.5
    rng = np.random.default_rng(0)
    cls = PrioritizedReplayBuffer if prioritized else ReplayBuffer
    buf = cls(128, 1, (k * channels, 2, 2), np.uint8, n_step=n_step, gamma=g, frame_stack=k, seed=0)
    frame = lambda t: np.full((channels, 2, 2), t % 256, np.uint8)  # noqa: E731
    t = 7
    frames = [frame(t)] * k
    steps: list[tuple[np.ndarray, np.ndarray, bool]] = []  # (obs, real next obs, terminated)
    for i in range(400):
        obs = np.concatenate(frames)
        t += 1
        frames = [*frames[1:], frame(t)]
        nxt = np.concatenate(frames)
        u = rng.random()
        life_loss, game_over = 0.05 <= u < 0.2, u < 0.05
        buf.add(
            obs[None],
            np.array([i]),
            np.ones(1, np.float32),
            nxt[None],
            np.array([life_loss or game_over]),
            np.zeros(1, bool),
            frames_continue=np.array([life_loss]),
        )
        steps.append((obs, nxt, life_loss or game_over))
        if game_over:  # a new game: its first stack is padded with its first frame
            t = int(rng.integers(0, 200))
            frames = [frame(t)] * k
    batch = buf.sample(256)
    assert batch["obs"].shape == (256, k * channels, 2, 2)
    for b, i in enumerate(batch["action"].tolist()):
        np.testing.assert_array_equal(batch["obs"][b].numpy(), steps[i][0])
        ret, m, term = 0.0, 0, False
        while m < n_step and i + m < len(steps) and not term:  # stop at any learner-episode end
            ret += g**m
            term = steps[i + m][2]
            m += 1
        np.testing.assert_array_equal(batch["next_obs"][b].numpy(), steps[i + m - 1][1])
        assert batch["reward"][b].item() == pytest.approx(ret)
        assert batch["terminated"][b].item() == float(term)
        assert batch["discount"][b].item() == pytest.approx(g**m)
