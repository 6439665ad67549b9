"""SAC, TAC, TD3 and DDPG pass the five continuous probe environments; SAC-discrete the discrete ones.

Checked per probe: the learned Q at the policy's action (one-step probes: Q = r; two-step: Q(0) = gamma)
and, where the reward depends on the action, the policy's action. The policy is loaded as an
evaluator would (``load_policy``: no learner state); the critics from the learner's state in the
same checkpoint. Temperature is small and fixed so the soft value stays within the tolerance of
the plain one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from d2rl import checkpoint
from d2rl.envs import make_vec_env
from d2rl.train import build_algorithm, load_policy, train

COMMON = [
    "env=gym",
    "env.num_envs=4",
    "trainer.total_env_steps=1024",
    "trainer.checkpoint_period_env_steps=0",
    "replay.capacity=4096",
    "algo.hidden_sizes=[64,64]",
    "algo.batch_size=64",
    "algo.gamma=0.9",
    "algo.learning_starts_env_steps=128",
    "algo.round_env_steps=128",
    "algo.critic_lr=3e-3",
    "algo.actor_lr=3e-3",
]
SAC = ["algo.alpha_auto=false", "algo.alpha_init=0.02"]
ALGOS = {
    "sac": ["algo=sac", *SAC],
    "tac": ["algo=tac", *SAC],
    "td3": ["algo=td3"],
    "ddpg": ["algo=ddpg"],
}


def _trained(make_cfg, tmp_path: Path, probe: str, algo: list[str]):  # type: ignore[no-untyped-def]
    """The trained policy (from ``load_policy``) and learner (its critics) of a probe run."""
    cfg = make_cfg(f"env.id=d2rl-probe/{probe}-v0", *COMMON, *algo)
    train(cfg)
    state = checkpoint.load(tmp_path / "run")
    policy, _ = load_policy(state)
    envs = make_vec_env(cfg.env, 0, num_envs=1)
    try:
        learner = build_algorithm(cfg, envs, 0)[0].learner
    finally:
        envs.close()
    learner.load_state_dict(state["learner"])
    return policy, learner


def _q_pi(trained, *obs: float) -> list[float]:  # type: ignore[no-untyped-def]
    """min_i Q_i(s, pi(s)) (deterministic policy); for discrete actions E_pi[min_i Q_i(s, .)]."""
    policy, learner = trained
    o = torch.tensor([[x] for x in obs])
    with torch.no_grad():
        f = policy.encoder(o)
        if policy.scale is None:
            pi = policy.actor(f).exp()
            return (pi * learner.critics.q(f).min(0).values).sum(-1).tolist()
        a = policy.scale.from_env(policy.act(o, explore=False)[0])
        return learner.critics.q(torch.cat([f, a], -1)).min(0).values.squeeze(-1).tolist()


def _pi(trained, *obs: float) -> list[float]:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return trained[0].act(torch.tensor([[x] for x in obs]), explore=False)[0].reshape(len(obs)).tolist()


@pytest.mark.parametrize("algo", list(ALGOS))
@pytest.mark.parametrize(
    "probe",
    ["ConstantReward", "ObsDependentReward", "TwoStepDiscount", "ActionDependentReward", "ObsActionReward"],
)
def test_continuous_probes(make_cfg, tmp_path, algo: str, probe: str) -> None:  # type: ignore[no-untyped-def]
    trained = _trained(make_cfg, tmp_path, f"{probe}Continuous", ALGOS[algo])
    if probe == "ConstantReward":
        assert _q_pi(trained, 0.0)[0] == pytest.approx(1.0, abs=0.1)
    elif probe == "ObsDependentReward":
        assert _q_pi(trained, -1.0, 1.0) == pytest.approx([-1.0, 1.0], abs=0.15)
    elif probe == "TwoStepDiscount":
        assert _q_pi(trained, 0.0, 1.0) == pytest.approx([0.9, 1.0], abs=0.1)
    elif probe == "ActionDependentReward":
        assert _pi(trained, 0.0)[0] > 0.8
        assert _q_pi(trained, 0.0)[0] == pytest.approx(1.0, abs=0.2)
    else:
        a = _pi(trained, -1.0, 1.0)
        assert a[0] < -0.8 and a[1] > 0.8
        assert _q_pi(trained, -1.0, 1.0) == pytest.approx([1.0, 1.0], abs=0.2)


@pytest.mark.parametrize(
    "probe",
    ["ConstantReward", "ObsDependentReward", "TwoStepDiscount", "ActionDependentReward", "ObsActionReward"],
)
def test_discrete_sac_probes(make_cfg, tmp_path, probe: str) -> None:  # type: ignore[no-untyped-def]
    trained = _trained(make_cfg, tmp_path, probe, ["algo=sac_discrete", *SAC])
    if probe == "ConstantReward":
        assert _q_pi(trained, 0.0)[0] == pytest.approx(1.0, abs=0.1)
    elif probe == "ObsDependentReward":
        assert _q_pi(trained, -1.0, 1.0) == pytest.approx([-1.0, 1.0], abs=0.15)
    elif probe == "TwoStepDiscount":
        assert _q_pi(trained, 0.0, 1.0) == pytest.approx([0.9, 1.0], abs=0.1)
    elif probe == "ActionDependentReward":
        assert _pi(trained, 0.0) == [1]
        assert _q_pi(trained, 0.0)[0] == pytest.approx(1.0, abs=0.2)
    else:
        assert _pi(trained, -1.0, 1.0) == [0, 1]
        assert _q_pi(trained, -1.0, 1.0) == pytest.approx([1.0, 1.0], abs=0.2)
