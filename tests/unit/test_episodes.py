"""The episode tracker: whole games from info["episode"] when the suite reports them."""

import numpy as np

from d2rl.episodes import EpisodeTracker


def test_tracker_with_episode_stats_counts_only_the_envs_episodes() -> None:
    t = EpisodeTracker(2, episode_stats=True)
    # a learner episode ends without info["episode"] (a life loss): no episode, whatever the rewards
    t.step(np.array([1.0, 1.0]), np.array([True, False]), {})
    assert t.drain() == [] and t.episodes == 0
    t.step(
        np.array([1.0, 1.0]),
        np.array([True, True]),
        {"episode": {"r": np.array([0, 57.0]), "l": np.array([0, 9])}, "_episode": np.array([False, True])},
    )
    # env 0's learner episode ended (a life loss) but its game goes on: no finished episode for it
    assert t.drain() == [(57.0, 9)]
    assert t.episodes == 1
    np.testing.assert_array_equal(t.returns, [0.0, 0.0])  # learner episodes restart at done
    np.testing.assert_array_equal(t.lengths, [0, 0])


def test_tracker_without_episode_stats_sums_the_rewards() -> None:
    t = EpisodeTracker(2)
    t.step(np.array([1.0, 2.0]), np.array([False, False]))
    t.step(np.array([1.0, 2.0]), np.array([True, False]), {"episode": {"r": [9.0, 9.0], "l": [9, 9]}})
    assert t.drain() == [(2.0, 2)] and t.episodes == 1
    assert t.recent_mean() == 2.0
