"""PPG and DAAC pass the five probe environments (tests/probes.py), as PPO and A2C do
(tests/integration/test_probes.py); PPG's settings make several auxiliary phases happen."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from d2rl import checkpoint
from d2rl.train import load_policy, train

COMMON = [
    "~tuned",
    "env.num_envs=8",
    "algo.num_steps=32",
    "algo.num_minibatches=4",
    "algo.lr=3e-3",
    "algo.gamma=0.9",
    "algo.ent_coef=0.0",
    "algo.normalize_reward=false",  # the probes check values in reward units
    "trainer.checkpoint_period_env_steps=0",
]
PROBE_SETTINGS = {
    # 24 rollouts: aux phases after rollouts 4, 8, ..., 20
    "ppg": [*COMMON, "trainer.total_env_steps=6144", "algo.policy_epochs=8", "algo.value_epochs=8",
            "algo.n_pi=4", "algo.aux_epochs=2", "algo.aux_minibatches_per_rollout=4"],
    "daac": [*COMMON, "trainer.total_env_steps=6144", "algo.policy_epochs=4", "algo.value_epochs=8"],
}  # fmt: skip


@pytest.fixture(params=sorted(PROBE_SETTINGS))
def algo(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _trained(make_cfg, tmp_path: Path, probe: str, algo: str, *extra: str):  # type: ignore[no-untyped-def]
    cfg = make_cfg(f"algo={algo}", "env=gym", f"env.id=d2rl-probe/{probe}-v0", *PROBE_SETTINGS[algo], *extra)
    train(cfg)
    policy, _ = load_policy(checkpoint.load(tmp_path / "run"))  # as an evaluator would: no learner state
    return policy


def _v(agent, *obs: float) -> list[float]:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return agent.value(torch.tensor([[o] for o in obs])).tolist()


def _pi(agent, *obs: float) -> list[int]:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return agent.act(torch.tensor([[o] for o in obs]), explore=False)[0].tolist()


def test_constant_reward(make_cfg, tmp_path, algo) -> None:  # type: ignore[no-untyped-def]
    agent = _trained(make_cfg, tmp_path, "ConstantReward", algo)
    assert _v(agent, 0.0)[0] == pytest.approx(1.0, abs=0.1)


def test_obs_dependent_reward(make_cfg, tmp_path, algo) -> None:  # type: ignore[no-untyped-def]
    agent = _trained(make_cfg, tmp_path, "ObsDependentReward", algo)
    assert _v(agent, -1.0, 1.0) == pytest.approx([-1.0, 1.0], abs=0.15)


def test_two_step_discounting(make_cfg, tmp_path, algo) -> None:  # type: ignore[no-untyped-def]
    agent = _trained(make_cfg, tmp_path, "TwoStepDiscount", algo, "algo.gae_lambda=0.95")
    assert _v(agent, 0.0, 1.0) == pytest.approx([0.9, 1.0], abs=0.1)


def test_action_dependent_reward(make_cfg, tmp_path, algo) -> None:  # type: ignore[no-untyped-def]
    agent = _trained(make_cfg, tmp_path, "ActionDependentReward", algo)
    assert _pi(agent, 0.0) == [1]
    assert _v(agent, 0.0)[0] == pytest.approx(1.0, abs=0.2)


def test_obs_and_action_dependent_reward(make_cfg, tmp_path, algo) -> None:  # type: ignore[no-untyped-def]
    agent = _trained(make_cfg, tmp_path, "ObsActionReward", algo)
    assert _pi(agent, -1.0, 1.0) == [0, 1]
    assert _v(agent, -1.0, 1.0) == pytest.approx([1.0, 1.0], abs=0.2)
