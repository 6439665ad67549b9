"""Learning tests for the value-based family on CartPole-v1, each within its documented budget
(conf/tuned/<algo>_cartpole.yaml: 50k env steps, 1 env, rl-baselines3-zoo's DQN schedule).

The FINAL policy is asserted (train()'s final evaluation: 10 deterministic episodes). With the zoo's
settings DQN's greedy policy oscillates late in training (finals 121, 500, 500 for seeds 1-3, as
stable-baselines3's DQN does on CartPole), so tuned/dqn_cartpole.yaml anneals the learning rate,
uses double Q and 3-step returns: finals 500 for seeds 1-5. Rainbow and IQN keep their tuned files;
measured on the new API, seed 1: finals 500.0 and 500.0 (evaluations at 10k-50k: rainbow 269,
500, 500, 500, 500; iqn 303, 157, 185, 183, 500 — IQN is the least stable of the three).
"""

import pytest

from d2rl.train import train

EVAL = ["trainer.eval_period_env_steps=10000", "trainer.eval_episodes=10", "seed=1"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [["algo=dqn"], ["algo=rainbow", "replay=prioritized"], ["algo=iqn"]],
    ids=["dqn", "rainbow", "iqn"],
)
def test_final_policy_reaches_475_on_cartpole_within_50k_steps(make_cfg, overrides: list[str]) -> None:  # type: ignore[no-untyped-def]
    out = train(make_cfg(*overrides, *EVAL))
    assert out["env_steps"] <= 50_000 + 256
    assert out["eval/return_mean"] >= 475.0  # the final policy, not the best evaluation seen
