"""Learning tests for the value-based family on CartPole-v1, each within its documented budget
(conf/tuned/<algo>_cartpole.yaml: 50k env steps, 1 env, rl-baselines3-zoo's DQN schedule).

"Reaches 475" = a periodic evaluation (10 deterministic episodes, every 10k env steps) scores
>= 475 within the budget. The policy after the last step is not asserted: with these
hyperparameters DQN's greedy policy oscillates late in training (measured, seed 1: evals 500 at
30k env steps, 102 at 40k, 130 at 50k), as stable-baselines3's DQN does on CartPole too.
"""

import csv
from pathlib import Path

import pytest

from d2rl.train import train

EVAL = ["trainer.eval_period_env_steps=10000", "trainer.eval_episodes=10", "seed=1"]


def _best_eval(run_dir: str) -> float:
    rows = csv.DictReader((Path(run_dir) / "metrics.csv").open())
    return max(float(r["eval/return_mean"]) for r in rows if r.get("eval/return_mean"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [["algo=dqn"], ["algo=rainbow", "replay=prioritized"], ["algo=iqn"]],
    ids=["dqn", "rainbow", "iqn"],
)
def test_reaches_475_on_cartpole_within_50k_steps(make_cfg, overrides: list[str]) -> None:  # type: ignore[no-untyped-def]
    out = train(make_cfg(*overrides, *EVAL))
    assert out["env_steps"] <= 50_000 + 256
    assert _best_eval(out["run_dir"]) >= 475.0
