"""RND passes the five probe environments (tests/probes.py), through its extrinsic value head.

The intrinsic bonus is on (the paper's coefficients 2 extrinsic / 1 intrinsic): the probes check
that it does not leak into the extrinsic value V_E (column 0 of the two-head value) and leaves the
extrinsically best action the policy's choice. The agent is loaded from its checkpoint, as an
evaluator would (no learner state).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from d2rl import checkpoint
from d2rl.algorithms.rnd.networks import EXT
from d2rl.train import load_policy, train

RND_PROBE = [
    "algo=rnd",
    "~tuned",
    "trainer.total_env_steps=6144",
    "env.num_envs=8",
    "algo.num_steps=32",
    "algo.num_minibatches=4",
    "algo.update_epochs=8",
    "algo.lr=3e-3",
    "algo.ent_coef=0.0",
    "algo.gamma=0.9",
    "algo.max_grad_norm=0.5",
    "algo.rnd_hidden_size=32",
    "algo.rnd_output_size=32",
    "trainer.checkpoint_period_env_steps=0",
]


def _trained(make_cfg, tmp_path: Path, probe: str, *extra: str):  # type: ignore[no-untyped-def]
    cfg = make_cfg("env=gym", f"env.id=d2rl-probe/{probe}-v0", *RND_PROBE, *extra)
    train(cfg)
    policy, _ = load_policy(checkpoint.load(tmp_path / "run"))
    return policy


def _v(agent, *obs: float) -> list[float]:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return agent.value(torch.tensor([[o] for o in obs]))[:, EXT].tolist()


def _pi(agent, *obs: float) -> list[int]:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return agent.act(torch.tensor([[o] for o in obs]), explore=False)[0].tolist()


def test_constant_reward(make_cfg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    agent = _trained(make_cfg, tmp_path, "ConstantReward")
    assert _v(agent, 0.0)[0] == pytest.approx(1.0, abs=0.1)


def test_obs_dependent_reward(make_cfg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    agent = _trained(make_cfg, tmp_path, "ObsDependentReward")
    assert _v(agent, -1.0, 1.0) == pytest.approx([-1.0, 1.0], abs=0.15)


def test_two_step_discounting(make_cfg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    agent = _trained(make_cfg, tmp_path, "TwoStepDiscount")
    assert _v(agent, 0.0, 1.0) == pytest.approx([0.9, 1.0], abs=0.1)


def test_action_dependent_reward(make_cfg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    agent = _trained(make_cfg, tmp_path, "ActionDependentReward")
    assert _pi(agent, 0.0) == [1]
    assert _v(agent, 0.0)[0] == pytest.approx(1.0, abs=0.2)


def test_obs_and_action_dependent_reward(make_cfg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    agent = _trained(make_cfg, tmp_path, "ObsActionReward")
    assert _pi(agent, -1.0, 1.0) == [0, 1]
    assert _v(agent, -1.0, 1.0) == pytest.approx([1.0, 1.0], abs=0.2)


def test_continuous_action_dependent_reward(make_cfg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    agent = _trained(make_cfg, tmp_path, "ActionDependentRewardContinuous")
    assert _pi_box(agent, 0.0) > 0.5


def _pi_box(agent, obs: float) -> float:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return float(agent.act(torch.tensor([[obs]]), explore=False)[0].reshape(-1)[0])
