"""What the plugin registers (entry points in pyproject.toml). Torch-free on purpose: d2rl reads
every plugin's specs for ``d2rl --help`` and ``d2rl-list``; the implementations named by
``"module:function"`` strings are imported only when chosen."""

from __future__ import annotations

from dataclasses import dataclass

from d2rl.specs import AlgorithmSpec, EnvSuiteSpec, NetworkSpec


@dataclass
class ReinforceConfig:
    name: str = "reinforce"
    lr: float = 1e-3
    num_steps: int = 256  # env steps per env per update (one gradient step per rollout)
    gamma: float = 0.99
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    norm_adv: bool = True
    max_grad_norm: float = 1.0


@dataclass
class ResMLPConfig:
    name: str = "resmlp"
    width: int = 64
    num_blocks: int = 2


REINFORCE = AlgorithmSpec(
    name="reinforce",
    config_class=ReinforceConfig,
    builder="d2rl_reinforce.reinforce:build",
    action_spaces=("discrete", "box"),
    observations=("vector", "pixels"),
    description="REINFORCE with a learned baseline (Williams 1992) [example plugin]",
    config_search_path="pkg://d2rl_reinforce.conf",
)
RESMLP = NetworkSpec(
    name="resmlp",
    config_class=ResMLPConfig,
    builder="d2rl_reinforce.resmlp:build",
    accepts=("vector",),
    description="residual MLP with LayerNorm [example plugin]",
)
TOY = EnvSuiteSpec(
    name="toy",
    make_vec="d2rl_reinforce.corridor:make_vec",
    description="tiny corridor env for plugin demos [example plugin]",
    config_search_path="pkg://d2rl_reinforce.conf",
    smoke=("env=toy_corridor",),
)
