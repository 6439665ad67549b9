"""Learning tests (Tianshou style): train to a return threshold and assert it."""

import pytest

from d2rl.train import train


@pytest.mark.slow
@pytest.mark.ci
def test_ppo_default_run_solves_cartpole(make_cfg) -> None:  # type: ignore[no-untyped-def]
    """The default `d2rl` run: PPO (tuned/ppo_cartpole.yaml) reaches >= 475 over 10 deterministic episodes."""
    out = train(make_cfg("trainer.final_eval_episodes=10", "seed=1"))
    assert out["env_steps"] >= 100_000
    assert out["eval/return_mean"] >= 475.0


@pytest.mark.slow
def test_a2c_solves_cartpole(make_cfg) -> None:  # type: ignore[no-untyped-def]
    """A2C with its defaults (SB3's: 8 envs x 5 steps, RMSprop 7e-4) reaches >= 475 with the FINAL
    policy within 200k env steps. Measured here (final eval over 10 episodes): seed 1: 500.0,
    seed 2: 500.0 (evaluations every 25k dipped mid-run, to 52 and 134 at 75k, as A2C does)."""
    out = train(make_cfg("algo=a2c", "trainer.total_env_steps=200000", "trainer.final_eval_episodes=10", "seed=1"))
    assert out["eval/return_mean"] >= 475.0
