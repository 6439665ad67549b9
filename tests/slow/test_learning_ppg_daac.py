"""PPG and DAAC solve CartPole-v1: the FINAL policy (train()'s final evaluation, 10 deterministic
episodes) reaches >= 475 within the budget of tuned/ppg_cartpole.yaml and tuned/daac_cartpole.yaml
(20k env steps each).

Measured here, final evaluation (10 episodes) per seed at the 20k budget: PPG seeds 1, 3, 4:
500.0, 500.0, 500.0; DAAC seeds 1, 3, 4: 500.0, 500.0, 500.0. Earlier 50k-step runs (seeds 1, 2,
evaluated every 10k): 500.0 at every evaluation from 10k on, for both.
"""

import pytest

from d2rl.train import train


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppg", "daac"])
def test_solves_cartpole_with_its_tuned_settings(make_cfg, algo: str) -> None:  # type: ignore[no-untyped-def]
    out = train(make_cfg(f"algo={algo}", "trainer.final_eval_episodes=10", "seed=1"))
    assert out["env_steps"] >= 20_000
    assert out["eval/return_mean"] >= 475.0
