"""R2D2 (distributed=local, i.e. R2D1) learning tests: the FINAL policy (train()'s final greedy
evaluation, the recurrent state carried through each episode) on tasks only memory solves.

- env=memory_cue (length 10: the cue at step 0 decides the reward of step 9; memoryless average 0,
  solved 1.0) with conf/tuned/r2d2_memory_cue.yaml (16k env steps): finals 1.00 over 50 episodes
  for seeds 1, 2, 3.
- env=cartpole_positions (CartPole-v1 with the velocities hidden) with
  conf/tuned/r2d2_cartpole_positions.yaml (60k env steps): finals 456.6, 490.8, 180.9 over 20
  episodes for seeds 1, 2, 3 (the final policy is not stable across seeds: seed 3 reached 381 at
  40k); the test asserts seed 1 >= 400 (README, R2D2 section).
"""

import pytest

from d2rl.train import train


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_r2d2_solves_memory_cue_of_length_10(make_cfg, seed: int) -> None:  # type: ignore[no-untyped-def]
    out = train(make_cfg("algo=r2d2", "env=memory_cue", f"seed={seed}", "trainer.final_eval_episodes=50"))
    assert out["env_steps"] <= 16_000 + 256
    assert out["eval/return_mean"] >= 0.9  # a memoryless policy averages 0


CARTPOLE_POSITIONS_THRESHOLD = 400.0  # seed 1 measured 456.6 (solved: 475)


@pytest.mark.slow
def test_r2d2_balances_cartpole_from_positions_only(make_cfg) -> None:  # type: ignore[no-untyped-def]
    out = train(make_cfg("algo=r2d2", "env=cartpole_positions", "seed=1", "trainer.final_eval_episodes=20"))
    assert out["env_steps"] <= 60_000 + 256
    assert out["eval/return_mean"] >= CARTPOLE_POSITIONS_THRESHOLD
