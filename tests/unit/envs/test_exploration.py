"""Deep sea (d2rl/DeepSea-v0): dynamics, rewards and the distinct-cell count."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from d2rl.envs.exploration import DeepSea, DeepSeaVisits, deep_sea_cells


def _walk(env: DeepSea, rights: list[bool]) -> tuple[float, list[tuple[int, int]], bool]:
    env.reset(seed=0)
    total, cells, done = 0.0, [(0, 0)], False
    for right in rights:
        r_action = int(env.right_action[env.row, env.col])
        obs, reward, done, truncated, _ = env.step(r_action if right else 1 - r_action)
        total += reward
        cells.append(tuple(divmod(int(obs.argmax()), env.size)))  # type: ignore[arg-type]
        assert not truncated
    return total, cells, done


def test_only_the_all_right_path_pays_and_right_moves_cost() -> None:
    env = DeepSea(size=5)
    total, cells, done = _walk(env, [True] * 5)
    assert done and total == pytest.approx(1.0 - 5 * 0.01 / 5)
    assert cells == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (4, 4)]
    total, cells, done = _walk(env, [True, True, True, True, False])
    assert done and total == pytest.approx(-4 * 0.01 / 5)
    total, _, _ = _walk(env, [False] * 5)
    assert total == 0.0


def test_action_mapping_is_drawn_per_cell_or_fixed() -> None:
    assert DeepSea(size=8, randomize_actions=False).right_action.min() == 1
    mapping = DeepSea(size=8, mapping_seed=3).right_action
    assert 0 < mapping.sum() < 64
    assert np.array_equal(mapping, DeepSea(size=8, mapping_seed=3).right_action)


def test_registered_and_cells_counted_from_observations() -> None:
    env = gym.make("d2rl/DeepSea-v0", size=4)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (16,) and obs[0] == 1.0
    batch = np.stack([obs, np.eye(16, dtype=np.float32)[5], np.eye(16, dtype=np.float32)[5]])
    assert deep_sea_cells(batch, 4) == {(0, 0), (1, 1)}
    visits = DeepSeaVisits(4)
    visits.add(batch.reshape(3, 1, 16))
    assert visits.count == 2 and visits.reachable == 10
