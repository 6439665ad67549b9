"""Learning tests for the off-policy actor-critics (Tianshou style: train, assert a return threshold).

Budgets and thresholds, asserted on the FINAL policy (train()'s return value = summary.json's
final_eval: 10 deterministic episodes after the last update; conf/tuned/<algo>_<env>.yaml):
- SAC, TD3 and DDPG on Pendulum-v1: mean return >= -200 within 20k env steps
  (measured, seed 1, new API: SAC -144.3, TD3 -155.8, DDPG -156.6; legacy: -143.9, -149.4, -153.5).
- SAC-discrete on CartPole-v1: mean return >= 150 within 30k env steps (measured 207.2; legacy 211.4).
None is marked `ci`: each takes minutes of 256-256 gradient steps on a 2-core CPU.
"""

import json
from pathlib import Path

import pytest

from d2rl.train import train


def _final_eval(out: dict) -> float:  # type: ignore[type-arg]
    """The final evaluation's mean return, as train() returns it and summary.json records it."""
    summary = json.loads((Path(out["run_dir"]) / "summary.json").read_text())
    assert summary["final_eval"]["mean"] == out["eval/return_mean"]
    return float(out["eval/return_mean"])


PENDULUM = ["env=pendulum", "trainer.final_eval_episodes=10", "trainer.eval_period_env_steps=0", "seed=1"]


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["sac", "td3", "ddpg"])
def test_pendulum_within_20k_steps(make_cfg, algo: str) -> None:  # type: ignore[no-untyped-def]
    out = train(make_cfg(f"algo={algo}", *PENDULUM))
    assert out["env_steps"] <= 20_000 + 64
    assert _final_eval(out) >= -200.0


@pytest.mark.slow
def test_sac_discrete_learns_cartpole(make_cfg) -> None:  # type: ignore[no-untyped-def]
    out = train(make_cfg("algo=sac_discrete", "env=cartpole", "trainer.final_eval_episodes=10", "seed=1"))
    assert out["env_steps"] <= 30_000 + 256
    assert _final_eval(out) >= 150.0
