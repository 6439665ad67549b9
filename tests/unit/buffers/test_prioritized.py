"""Sum tree properties (hypothesis) and prioritized replay sampling/weights/updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from d2rl.buffers.prioritized import PrioritizedReplayBuffer, SumTree

priorities = st.lists(st.floats(0.0, 100.0, allow_nan=False), min_size=1, max_size=300)


@settings(max_examples=60, deadline=None)
@given(priorities, st.data())
def test_sum_tree_total_and_internal_sums(values: list[float], data: st.DataObject) -> None:
    tree = SumTree(len(values))
    tree.set(np.arange(len(values)), np.array(values))
    # overwrite a random subset (with duplicates: last write wins, as in numpy assignment)
    idx = data.draw(st.lists(st.integers(0, len(values) - 1), max_size=20))
    new = data.draw(st.lists(st.floats(0.0, 100.0), min_size=len(idx), max_size=len(idx)))
    expected = np.array(values, dtype=np.float64)
    expected[np.array(idx, dtype=np.int64)] = np.array(new)
    tree.set(np.array(idx, dtype=np.int64), np.array(new))
    assert tree.total == pytest.approx(expected.sum(), rel=1e-9, abs=1e-9)
    leaves = tree.leaves
    internal = np.arange(1, leaves)
    np.testing.assert_allclose(tree.nodes[internal], tree.nodes[2 * internal] + tree.nodes[2 * internal + 1])


@settings(max_examples=60, deadline=None)
@given(priorities, st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=50))
def test_sum_tree_find_inverts_the_cumulative_sum(values: list[float], u: list[float]) -> None:
    p = np.array(values)
    if p.sum() <= 0:
        return
    tree = SumTree(len(p))
    tree.set(np.arange(len(p)), p)
    prefix = np.array(u) * tree.total
    found = tree.find(prefix)
    cum = np.cumsum(p)
    # the leaf holding prefix s has cum[i-1] <= s < cum[i] (up to float round-off), and p > 0
    assert (p[found] > 0).all()
    lo = np.concatenate([[0.0], cum])[found]
    assert (lo <= prefix + 1e-9 * cum[-1]).all()
    assert (prefix <= cum[found] + 1e-9 * cum[-1]).all()


def test_sampling_is_proportional_to_priority() -> None:
    tree = SumTree(5)
    p = np.array([1.0, 0.0, 2.0, 3.0, 4.0])
    tree.set(np.arange(5), p)
    rng = np.random.default_rng(0)
    counts = np.bincount(tree.find(rng.random(200_000) * tree.total), minlength=5) / 200_000
    np.testing.assert_allclose(counts, p / p.sum(), atol=0.005)


def _buffer(**kw) -> PrioritizedReplayBuffer:  # type: ignore[no-untyped-def]
    buf = PrioritizedReplayBuffer(64, 1, (1,), np.float32, n_step=1, gamma=0.9, seed=0, **kw)
    for t in range(8):
        o = np.array([[t]], np.float32)
        buf.add(o, np.array([t]), np.zeros(1, np.float32), o + 1, np.array([t % 4 == 3]), np.zeros(1, bool))
    return buf


def test_priorities_drive_sampling_and_weights() -> None:
    buf = _buffer(alpha=1.0)
    assert len(buf) == 8
    batch = buf.sample(8)  # all at max priority 1: uniform, weights 1
    torch.testing.assert_close(batch["weights"], torch.ones(8))
    # give transition with action 5 priority 7 (others stay 1): it gets 7 / 14 of the samples
    ids = batch["indices"][batch["action"] == 5]
    buf.update_priorities(ids, torch.tensor([7.0 - 1e-6]))
    buf.beta = 1.0
    big = buf.sample(14_000)
    share = (big["action"] == 5).float().mean().item()
    assert share == pytest.approx(0.5, abs=0.02)
    # w = (N P)^-beta normalised by the max: the frequent one weighs 1/7 of the others
    w5 = big["weights"][big["action"] == 5].unique()
    assert w5.tolist() == pytest.approx([1 / 7], rel=1e-4)
    assert buf.max_priority == pytest.approx(7.0)
    # new transitions enter at max priority
    buf.add(
        np.ones((1, 1), np.float32),
        np.array([9]),
        np.zeros(1, np.float32),
        np.ones((1, 1), np.float32),
        np.zeros(1, bool),
        np.zeros(1, bool),
    )
    new_id = int(np.flatnonzero(buf.valid[:, 0])[-1])
    assert buf.tree.get(np.array([new_id]))[0] == pytest.approx(7.0)


def test_importance_weights_can_be_switched_off() -> None:
    buf = _buffer(alpha=1.0, importance_weights=False)
    batch = buf.sample(4)
    buf.update_priorities(batch["indices"], torch.tensor([10.0, 0.1, 3.0, 1.0]))
    torch.testing.assert_close(buf.sample(32)["weights"], torch.ones(32))


def test_final_obs_rows_are_never_sampled_and_state_round_trips() -> None:
    buf = _buffer()
    batch = buf.sample(4096)
    assert set(batch["action"].tolist()) == set(range(8))
    other = PrioritizedReplayBuffer(64, 1, (1,), np.float32, n_step=1, gamma=0.9, seed=0)
    buf.update_priorities(batch["indices"][:3], torch.tensor([5.0, 6.0, 7.0]))
    other.load_state_dict(buf.state_dict())
    np.testing.assert_array_equal(other.tree.nodes, buf.tree.nodes)
    assert other.max_priority == buf.max_priority


def test_non_finite_td_errors_keep_the_old_priority() -> None:
    """A diverged update's NaN/inf TD errors must not reach the sum tree (sampling would break
    for the rest of the run); finite ones in the same call are applied."""
    buf = _buffer(alpha=1.0)
    batch = buf.sample(3)
    ids = batch["indices"]
    before = buf.tree.get(np.asarray(ids)).copy()
    buf.update_priorities(ids, torch.tensor([float("nan"), float("inf"), 3.0]))
    after = buf.tree.get(np.asarray(ids))
    assert after[0] == before[0] and after[1] == before[1] and after[2] == pytest.approx(3.0)
    assert np.isfinite(buf.max_priority) and buf.max_priority == pytest.approx(3.0)
    assert len(buf.sample(64)["indices"]) == 64
