"""Sequence replay (R2D2): the builder's overlap, burn-in and episode ends, stored states, the
priority mix, prioritized sampling and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from d2rl.buffers.sequence import SequenceBuilder, SequenceReplay, SequenceStorage, mixed_priority

PAD = -1.0


def feed(builder: SequenceBuilder, lengths: list[int], final: float = 99.0) -> list[dict]:
    """One env, episodes of ``lengths`` (the last one runs on); obs = state = reward = episode step."""
    out = []
    for e, n in enumerate(lengths):
        for t in range(n):
            end = t == n - 1 and e < len(lengths) - 1
            state = (torch.full((1, 1, 2), float(t)),)
            out += builder.add(
                np.array([[t]], np.float32),
                np.array([t % 2]),
                np.array([float(t)]),
                np.array([end and e % 2 == 0]),  # even episodes terminate, odd ones are truncated
                np.array([end and e % 2 == 1]),
                np.array([[final]], np.float32),
                state,
            )
    return out


def obs_of(seq: dict) -> list[float]:
    return [
        o if m or (o == 99.0) else PAD for o, m in zip(seq["obs"][:, 0].tolist(), seq["mask"], strict=True)
    ]


def test_overlap_burn_in_and_padded_episode_end() -> None:
    b = SequenceBuilder(1, seq_len=4, overlap=2, burn_in=2, obs_shape=(1,))
    seqs = feed(b, [9, 1])  # an episode of 9 steps (terminated at step 8), then one running step
    assert [obs_of(s) for s in seqs] == [
        [PAD, PAD, 0, 1, 2, 3],  # trained part from step 0: the burn-in before it is padding
        [0, 1, 2, 3, 4, 5],  # stride 2: trained steps 2-5, burn-in 0-1
        [2, 3, 4, 5, 6, 7],
        [4, 5, 6, 7, 8, 99],  # the episode's end: its last steps, the final obs, no other episode
    ]
    assert seqs[0]["first"].tolist() == [False, False, True, False, False, False]
    assert seqs[1]["first"].tolist() == [True] + [False] * 5  # step 0 in the burn-in: the state resets
    assert not any(s["first"].any() for s in seqs[2:])
    assert seqs[3]["mask"].tolist() == [True] * 5 + [False]
    assert seqs[3]["terminated"].tolist() == [False] * 4 + [True, False]
    assert seqs[3]["done"].tolist() == [False] * 4 + [True, False]
    # the state stored with a sequence is the one before its slot 0 (zeros before the episode)
    assert [float(s["state"][0][0, 0]) for s in seqs] == [0.0, 0.0, 2.0, 4.0]
    assert seqs[0]["state"][0].shape == (1, 2)
    # the actions and rewards are those of the steps in the slots
    assert seqs[2]["reward"].tolist() == [2, 3, 4, 5, 6, 7]
    assert seqs[2]["action"].tolist() == [0, 1, 0, 1, 0, 1]


def test_short_and_truncated_episodes_never_mix() -> None:
    b = SequenceBuilder(1, seq_len=4, overlap=1, burn_in=1, obs_shape=(1,))
    seqs = feed(b, [2, 3, 6, 1])  # terminated, truncated, terminated, running
    assert [obs_of(s) for s in seqs] == [
        [PAD, 0, 1, 99, PAD],  # terminated after 2 steps (its final obs is kept, never bootstrapped)
        [PAD, 0, 1, 2, 99],  # truncated after 3 steps: the final obs bootstraps
        [PAD, 0, 1, 2, 3],  # a 6-step episode: trained 0-3 ...
        [2, 3, 4, 5, 99],  # ... then 3-5 (stride 3) after one burn-in step
    ]
    assert seqs[1]["done"].tolist() == [False, False, False, True, False]
    assert not seqs[1]["terminated"].any()
    for s in seqs:  # one episode per sequence: at most one first step, and only before any step of it
        assert s["first"].sum() <= 1


def test_every_step_is_trained_in_some_sequence() -> None:
    rng = np.random.default_rng(0)
    lengths = [int(n) for n in rng.integers(1, 30, 20)]
    for seq_len, overlap, burn_in in [(5, 2, 3), (8, 0, 0), (3, 2, 10)]:
        b = SequenceBuilder(1, seq_len, overlap, burn_in, (1,))
        seqs = []
        for e, n in enumerate(lengths):
            for t in range(n):
                obs = np.array([[1000.0 * e + t]], np.float32)
                end = np.array([t == n - 1])
                seqs += b.add(obs, np.zeros(1), np.zeros(1), end, np.zeros(1, bool), obs, None)
        trained: dict[float, int] = {}
        for s in seqs:
            assert s["state"] == ()
            for o in s["obs"][burn_in:, 0][s["mask"][burn_in:]]:
                trained[float(o)] = trained.get(float(o), 0) + 1
            episodes = {int(o) // 1000 for o in s["obs"][:, 0][s["mask"]]}
            assert len(episodes) == 1  # never two episodes in one sequence
        assert sorted(trained) == sorted(1000.0 * e + t for e, n in enumerate(lengths) for t in range(n))
        assert max(trained.values()) <= -(-seq_len // (seq_len - overlap))  # overlap, not more


def test_stored_state_is_the_policy_state_at_that_step() -> None:
    """Two envs stepped by a recurrent policy: each sequence's stored state equals the state the
    policy acted from at its slot 0, and replaying the core from it reproduces the acting Q-values."""
    from d2rl.algorithms.r2d2 import R2D2Config
    from d2rl.algorithms.r2d2.learner import R2D2Policy, RecurrentQNetwork
    from d2rl.modules.lstm import LSTMCore
    from d2rl.modules.mlp import MLP

    torch.manual_seed(0)
    enc = MLP(3, [8])
    q = RecurrentQNetwork(enc, LSTMCore(int(enc.out_dim), 6), 2, dueling=True, hidden=0)
    policy = R2D2Policy(q, 2, R2D2Config(learning_starts_env_steps=0))
    b = SequenceBuilder(2, seq_len=5, overlap=2, burn_in=3, obs_shape=(3,))
    rng = np.random.default_rng(1)
    state = policy.initial_state(2)
    acted: list[dict] = []  # per step: obs and the q-values the policy saw
    seqs = []
    ends = {0: {7, 20, 21, 33}, 1: {12, 30}}
    with torch.no_grad():
        for t in range(40):
            obs = rng.normal(size=(2, 3)).astype(np.float32)
            q_now, _ = q.step(torch.from_numpy(obs), state)
            action, extras, new_state = policy.act(torch.from_numpy(obs), state, True, 10)
            done = np.array([t in ends[0], t in ends[1]])
            acted.append({"obs": obs, "q": q_now.numpy(), "state": [x.clone() for x in state]})
            seqs += b.add(obs, action.numpy(), np.zeros(2), done, np.zeros(2, bool), obs, extras["state"])
            state = policy.reset_state(new_state, torch.from_numpy(done))
    assert len(seqs) > 6
    by_obs = {acted[t]["obs"][i].tobytes(): (t, i) for t in range(40) for i in range(2)}
    checked = 0
    with torch.no_grad():
        for s in seqs:
            mask = s["mask"]
            j0 = int(np.flatnonzero(mask)[0])
            t0, i = by_obs[s["obs"][j0].tobytes()]
            if j0 == 0:  # slot 0 is a real step: its stored state is the one the policy acted from
                for stored, had in zip(s["state"], acted[t0]["state"], strict=True):
                    np.testing.assert_array_equal(stored, had[:, i].numpy())
            else:  # an episode's start after padding: the initial (zero) state
                assert s["first"][j0] and all(not x.any() for x in s["state"])
            st = tuple(torch.from_numpy(x).unsqueeze(1) for x in s["state"])
            out, _ = q(torch.from_numpy(s["obs"]).unsqueeze(1), st, torch.from_numpy(s["first"]).unsqueeze(1))
            for j in np.flatnonzero(mask):
                t, env = by_obs[s["obs"][j].tobytes()]
                assert env == i
                np.testing.assert_allclose(out[j, 0].numpy(), acted[t]["q"][env], atol=1e-5)
                checked += 1
    assert checked > 50


def test_mixed_priority_with_eta() -> None:
    abs_td = torch.tensor([[1.0, 4.0], [3.0, 100.0], [2.0, 0.0]])  # [T=3, B=2]
    valid = torch.tensor([[True, True], [True, False], [True, True]])
    p = mixed_priority(abs_td, valid, eta=0.9)
    assert p[0].item() == pytest.approx(0.9 * 3 + 0.1 * 2)  # max 3, mean 2
    assert p[1].item() == pytest.approx(0.9 * 4 + 0.1 * 2)  # the invalid 100 does not count
    assert mixed_priority(abs_td, valid, eta=0.0)[0].item() == pytest.approx(2.0)
    assert mixed_priority(abs_td, valid, eta=1.0)[1].item() == pytest.approx(4.0)


def _seq(value: float, length: int = 3) -> dict:
    return {
        "obs": np.full((length, 1), value, np.float32),
        "action": np.zeros(length, np.int64),
        "reward": np.full(length, value, np.float32),
        "terminated": np.zeros(length, bool),
        "done": np.zeros(length, bool),
        "mask": np.ones(length, bool),
        "first": np.zeros(length, bool),
        "state": (np.full((1, 2), value, np.float32),),
    }


def test_prioritized_sampling_weights_and_stale_ids() -> None:
    r = SequenceReplay(4, 3, (1,), state_shapes=[(1, 2)], alpha=1.0, beta=1.0, priority_eps=0.0, seed=0)
    ids = r.add([_seq(0.0), _seq(1.0)], priorities=np.array([1.0, 3.0]))
    batch = r.sample(4000)
    assert batch["obs"].shape == (3, 4000, 1) and batch["state"][0].shape == (1, 4000, 2)
    frac = (batch["obs"][0, :, 0] == 1.0).float().mean().item()
    assert frac == pytest.approx(0.75, abs=0.03)
    w = batch["weights"][batch["obs"][0, :, 0] == 0.0][0].item()  # (N P)^-1 / max: P=.25 vs .75
    assert w == pytest.approx(1.0)
    assert batch["weights"].min().item() == pytest.approx((2 * 0.25) / (2 * 0.75))
    r.update_priorities(torch.from_numpy(ids), torch.tensor([3.0, 1.0]))
    frac = (r.sample(4000)["obs"][0, :, 0] == 0.0).float().mean().item()
    assert frac == pytest.approx(0.75, abs=0.03)
    r.add([_seq(2.0), _seq(3.0), _seq(4.0)])  # the ring overwrites slot 0 (id 0) with id 4
    r.update_priorities(np.array([0]), np.array([50.0]))  # stale: ignored
    assert r.tree.get(np.array([0]))[0] == pytest.approx(3.0)  # the new one kept max priority
    assert len(r) == 4


def test_uniform_sampling_ignores_priorities() -> None:
    r = SequenceReplay(8, 3, (1,), state_shapes=[(1, 2)], prioritized=False, seed=0)
    r.add([_seq(0.0), _seq(1.0)], priorities=np.array([1.0, 100.0]))
    frac = (r.sample(4000)["obs"][0, :, 0] == 1.0).float().mean().item()
    assert frac == pytest.approx(0.5, abs=0.03)
    assert torch.equal(r.sample(5)["weights"], torch.ones(5))


def test_state_dict_round_trip() -> None:
    r = SequenceReplay(4, 3, (1,), state_shapes=[(1, 2)], seed=0)
    r.add([_seq(float(v)) for v in range(6)], priorities=np.arange(1.0, 7.0))
    state = r.state_dict()
    restored = SequenceReplay(4, 3, (1,), state_shapes=[(1, 2)], seed=0)
    restored.load_state_dict(state)
    assert len(restored) == 4 and restored.inserted == 6
    assert np.array_equal(restored.obs, r.obs) and np.array_equal(restored.states[0], r.states[0])
    assert np.array_equal(restored.tree.nodes, r.tree.nodes) and restored.max_priority == r.max_priority
    with pytest.raises(ValueError, match="shape"):
        SequenceReplay(5, 3, (1,), state_shapes=[(1, 2)]).load_state_dict(state)


def test_storage_takes_the_loop_step_and_state_from_extras() -> None:
    b = SequenceBuilder(2, seq_len=2, overlap=0, burn_in=0, obs_shape=(1,))
    storage = SequenceStorage(b, SequenceReplay(8, 2, (1,), state_shapes=[(1, 1)]))
    assert storage.takes_extras
    for t in range(4):
        storage.add(
            np.full((2, 1), t, np.float32),
            np.zeros(2, np.int64),
            np.ones(2),
            np.zeros((2, 1), np.float32),
            np.zeros(2, bool),
            np.zeros(2, bool),
            extras={"state": (torch.full((1, 2, 1), 10.0 + t),)},
        )
    assert len(storage) == 4  # 2 envs x 2 sequences
    batch = storage.sample(4)
    assert sorted(batch["state"][0][0, :, 0].tolist()) == [10.0, 10.0, 12.0, 12.0]
    storage.cut_episodes()  # drops running episodes: a new stream starts at a first step


def test_builder_state_round_trip_continues_running_episodes() -> None:
    def stream(builder: SequenceBuilder, steps: range) -> list[dict]:
        out = []
        for t in steps:
            obs = np.array([[t], [100 + t]], np.float32)
            done = np.array([t % 7 == 6, t % 11 == 10])
            state = (torch.full((1, 2, 3), float(t)),)
            out += builder.add(obs, np.array([t % 2, 1]), np.ones(2), done, np.zeros(2, bool), obs, state)
        return out

    whole = stream(SequenceBuilder(2, 4, 2, 3, (1,)), range(40))
    first = SequenceBuilder(2, 4, 2, 3, (1,))
    part = stream(first, range(17))
    second = SequenceBuilder(2, 4, 2, 3, (1,))
    second.load_state_dict({k: v.clone() for k, v in first.state_dict().items()})
    part += stream(second, range(17, 40))
    assert len(part) == len(whole)
    for a, b in zip(part, whole, strict=True):
        for k in ("obs", "action", "reward", "terminated", "done", "mask", "first"):
            assert np.array_equal(a[k], b[k]), k
        assert all(np.array_equal(x, y) for x, y in zip(a["state"], b["state"], strict=True))
