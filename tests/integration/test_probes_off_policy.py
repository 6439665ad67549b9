"""SAC, TAC, TD3 and DDPG pass the five continuous probe environments; SAC-discrete the discrete ones.

Checked per probe: the learned Q at the policy's action (one-step probes: Q = r; two-step: Q(0) = gamma)
and, where the reward depends on the action, the policy's action. Temperature is small and fixed so
the soft value stays within the tolerance of the plain one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from d2rl import checkpoint
from d2rl.envs import make_vec_env
from d2rl.train import build_agent, train

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
    "algo.steps_per_iteration=32",
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
    cfg = make_cfg(f"env.id=d2rl-probe/{probe}-v0", *COMMON, *algo)
    train(cfg)
    state = checkpoint.load(tmp_path / "run")
    envs = make_vec_env(cfg.env, 0, num_envs=1)
    agent = build_agent(cfg, envs)
    agent.load_state_dict(state["agent"])
    return agent


def _q_pi(agent, *obs: float) -> list[float]:  # type: ignore[no-untyped-def]
    """min_i Q_i(s, pi(s)) (deterministic policy); for discrete actions E_pi[min_i Q_i(s, .)]."""
    o = torch.tensor([[x] for x in obs])
    with torch.no_grad():
        if agent.discrete:
            pi = agent.actor(o).exp()
            return (pi * agent.critic(o).min(0).values).sum(-1).tolist()
        a = agent.act_normalized(o, deterministic=True)
        return agent.critic(torch.cat([o, a], -1)).min(0).values.squeeze(-1).tolist()


def _pi(agent, *obs: float) -> list[float]:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return agent.policy(torch.tensor([[x] for x in obs]), deterministic=True).reshape(len(obs)).tolist()


@pytest.mark.parametrize("algo", list(ALGOS))
@pytest.mark.parametrize(
    "probe",
    ["ConstantReward", "ObsDependentReward", "TwoStepDiscount", "ActionDependentReward", "ObsActionReward"],
)
def test_continuous_probes(make_cfg, tmp_path, algo: str, probe: str) -> None:  # type: ignore[no-untyped-def]
    agent = _trained(make_cfg, tmp_path, f"{probe}Continuous", ALGOS[algo])
    if probe == "ConstantReward":
        assert _q_pi(agent, 0.0)[0] == pytest.approx(1.0, abs=0.1)
    elif probe == "ObsDependentReward":
        assert _q_pi(agent, -1.0, 1.0) == pytest.approx([-1.0, 1.0], abs=0.15)
    elif probe == "TwoStepDiscount":
        assert _q_pi(agent, 0.0, 1.0) == pytest.approx([0.9, 1.0], abs=0.1)
    elif probe == "ActionDependentReward":
        assert _pi(agent, 0.0)[0] > 0.8
        assert _q_pi(agent, 0.0)[0] == pytest.approx(1.0, abs=0.2)
    else:
        a = _pi(agent, -1.0, 1.0)
        assert a[0] < -0.8 and a[1] > 0.8
        assert _q_pi(agent, -1.0, 1.0) == pytest.approx([1.0, 1.0], abs=0.2)


@pytest.mark.parametrize(
    "probe",
    ["ConstantReward", "ObsDependentReward", "TwoStepDiscount", "ActionDependentReward", "ObsActionReward"],
)
def test_discrete_sac_probes(make_cfg, tmp_path, probe: str) -> None:  # type: ignore[no-untyped-def]
    agent = _trained(make_cfg, tmp_path, probe, ["algo=sac_discrete", *SAC])
    if probe == "ConstantReward":
        assert _q_pi(agent, 0.0)[0] == pytest.approx(1.0, abs=0.1)
    elif probe == "ObsDependentReward":
        assert _q_pi(agent, -1.0, 1.0) == pytest.approx([-1.0, 1.0], abs=0.15)
    elif probe == "TwoStepDiscount":
        assert _q_pi(agent, 0.0, 1.0) == pytest.approx([0.9, 1.0], abs=0.1)
    elif probe == "ActionDependentReward":
        assert _pi(agent, 0.0) == [1]
        assert _q_pi(agent, 0.0)[0] == pytest.approx(1.0, abs=0.2)
    else:
        assert _pi(agent, -1.0, 1.0) == [0, 1]
        assert _q_pi(agent, -1.0, 1.0) == pytest.approx([1.0, 1.0], abs=0.2)
