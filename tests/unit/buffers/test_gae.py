import numpy as np
import pytest

from d2rl.buffers.rollout import compute_gae


def test_gae_matches_hand_computation_with_episode_end() -> None:
    # one env, three steps; the episode ends at t=1, a new one starts at t=2
    gamma, lam = 0.9, 0.5
    rewards = np.array([[1.0], [2.0], [3.0]], np.float32)
    values = np.array([[0.5], [1.0], [2.0]], np.float32)
    dones = np.array([[False], [True], [False]])
    last = np.array([4.0], np.float32)
    # deltas: t2 = 3 + .9*4 - 2 = 4.6 ; t1 = 2 - 1 = 1.0 (no bootstrap) ; t0 = 1 + .9*1 - .5 = 1.4
    # advantages: A2 = 4.6 ; A1 = 1.0 (episode cut) ; A0 = 1.4 + .9*.5*1.0 = 1.85
    adv, ret = compute_gae(rewards, values, dones, last, gamma, lam)
    np.testing.assert_allclose(adv[:, 0], [1.85, 1.0, 4.6], rtol=1e-6)
    np.testing.assert_allclose(ret[:, 0], [2.35, 2.0, 6.6], rtol=1e-6)


def test_gae_lambda_one_is_discounted_return_minus_value() -> None:
    gamma = 0.99
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(5, 3)).astype(np.float64)
    values = rng.normal(size=(5, 3))
    last = rng.normal(size=3)
    adv, ret = compute_gae(rewards, values, np.zeros((5, 3), bool), last, gamma, 1.0)
    g = last.copy()
    for t in reversed(range(5)):
        g = rewards[t] + gamma * g
        np.testing.assert_allclose(ret[t], g, rtol=1e-10)
    np.testing.assert_allclose(adv, ret - values, rtol=1e-10)


@pytest.mark.parametrize("lam", [0.0, 0.95])
def test_gae_envs_are_independent(lam: float) -> None:
    rng = np.random.default_rng(1)
    r, v, d = rng.normal(size=(4, 2)), rng.normal(size=(4, 2)), rng.random((4, 2)) < 0.3
    last = rng.normal(size=2)
    adv, _ = compute_gae(r, v, d, last, 0.9, lam)
    for i in range(2):
        a_i, _ = compute_gae(r[:, i : i + 1], v[:, i : i + 1], d[:, i : i + 1], last[i : i + 1], 0.9, lam)
        np.testing.assert_allclose(adv[:, i], a_i[:, 0])
