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
