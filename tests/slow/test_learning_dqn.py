"""Learning tests for the value-based family on CartPole-v1 (threshold 475 over 10 deterministic
episodes), each within its documented budget (conf/tuned/<algo>_cartpole.yaml: 50k env steps)."""

import pytest

from d2rl.train import train


@pytest.mark.slow
def test_dqn_solves_cartpole_in_50k_steps(make_cfg) -> None:  # type: ignore[no-untyped-def]
    out = train(make_cfg("algo=dqn", "trainer.final_eval_episodes=10", "seed=1"))
    assert out["env_steps"] <= 50_000 + 256
    assert out["eval/return_mean"] >= 475.0


@pytest.mark.slow
def test_rainbow_solves_cartpole_in_50k_steps(make_cfg) -> None:  # type: ignore[no-untyped-def]
    out = train(make_cfg("algo=rainbow", "replay=prioritized", "trainer.final_eval_episodes=10", "seed=1"))
    assert out["env_steps"] <= 50_000 + 256
    assert out["eval/return_mean"] >= 475.0


@pytest.mark.slow
def test_iqn_solves_cartpole_in_50k_steps(make_cfg) -> None:  # type: ignore[no-untyped-def]
    out = train(make_cfg("algo=iqn", "trainer.final_eval_episodes=10", "seed=1"))
    assert out["env_steps"] <= 50_000 + 256
    assert out["eval/return_mean"] >= 475.0
