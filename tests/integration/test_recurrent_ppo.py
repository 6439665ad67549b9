"""Recurrent PPO end to end through ``train(cfg)`` and ``d2rl-eval``: the memory probe, every core,
a pixel env, resume. The settings of ``env=memory_cue`` come from ``conf/tuned/ppo_memory_cue.yaml``
(applied to ``algo=ppo`` and ``algo=recurrent_ppo`` alike, so both variants get the same budget)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from d2rl import checkpoint
from d2rl.cli import evaluate_checkpoint
from d2rl.config import EvalConfig
from d2rl.train import train

QUIET = ["trainer.torch_threads=1", "logger.tensorboard=false", "trainer.checkpoint_period_env_steps=0"]
# the fast memory probe: the cue must be kept for 3 steps; 100 eval episodes, so that a memoryless
# policy (return +1 or -1 with probability 1/2 each) stays below 0.3 (P(mean > 0.3) ~ 0.1%)
PROBE = [
    "env=memory_cue",
    "env.kwargs.length=4",
    "algo.num_steps=16",
    "trainer.total_env_steps=2048",
    "trainer.final_eval_episodes=100",
]


def _eval(run: Path, episodes: int = 1, num_envs: int = 1) -> dict[str, Any]:
    cfg = EvalConfig(checkpoint=str(run), episodes=episodes, num_envs=num_envs)
    return evaluate_checkpoint(OmegaConf.structured(cfg))


def test_memory_probe_recurrent_ppo_solves_it_and_d2rl_eval_carries_the_state(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    out = train(make_cfg("algo=recurrent_ppo", *PROBE, *QUIET, "seed=1"))
    assert out["eval/return_mean"] >= 0.9  # the final policy; 1.0 = always right
    played = _eval(tmp_path / "run", episodes=100, num_envs=16)  # the checkpoint, through d2rl-eval
    assert played["return_mean"] >= 0.9


def test_memory_probe_feed_forward_ppo_fails_with_the_same_budget(
    make_cfg: Callable[..., DictConfig],
) -> None:
    out = train(make_cfg("algo=ppo", *PROBE, *QUIET, "seed=1"))
    assert out["eval/return_mean"] <= 0.3


TINY = [
    "env=memory_cue",
    "env.num_envs=2",
    "algo.num_steps=32",
    "trainer.total_env_steps=256",
    "trainer.final_eval_episodes=2",
    "network.hidden_sizes=[16]",
    "network.core_size=16",
    "network.dnc_memory_slots=8",
    "network.dnc_word_size=8",
    "network.dnc_read_heads=2",
    "network.transformer_memory_steps=8",
]


@pytest.mark.parametrize(
    ("algo", "core"), [("ppo", "gru"), ("ppo", "dnc"), ("ppo", "transformer"), ("a2c", "lstm")]
)
def test_every_core_trains_and_plays_through_d2rl_eval(
    make_cfg: Callable[..., DictConfig], tmp_path: Path, algo: str, core: str
) -> None:
    extra = ["algo.bptt_len=8", "algo.num_minibatches=2", "algo.update_epochs=1"] if algo == "ppo" else []
    out = train(make_cfg(f"algo={algo}", f"network.core={core}", *TINY, *QUIET, *extra))
    assert out["env_steps"] == 256
    state = checkpoint.load(tmp_path / "run")
    assert any(k.startswith("policy.model.actor_core.") for k in state["learner"])
    played = _eval(tmp_path / "run", episodes=3, num_envs=2)
    assert played["episodes"] == 3 and -1.0 <= played["return_mean"] <= 1.0


def test_recurrent_ppo_on_atari_pixels(make_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    pytest.importorskip("ale_py")
    out = train(
        make_cfg(
            "algo=recurrent_ppo",
            "env=atari_breakout",
            "env.max_episode_steps=64",
            "env.num_envs=2",
            "network.core_size=32",
            "algo.num_steps=64",
            "algo.num_minibatches=2",
            "algo.update_epochs=1",
            "algo.bptt_len=16",
            "trainer.total_env_steps=256",
            "trainer.final_eval_episodes=1",
            *QUIET,
        )
    )
    assert out["env_steps"] == 256
    assert _eval(tmp_path / "run")["episodes"] == 1


def _flat(x: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(x, dict):
        return {k: v for key, val in x.items() for k, v in _flat(val, f"{prefix}/{key}").items()}
    if isinstance(x, (list, tuple)):
        return {k: v for i, val in enumerate(x) for k, v in _flat(val, f"{prefix}/{i}").items()}
    return {prefix: x}


def _differences(a: Any, b: Any) -> list[str]:
    fa, fb = _flat(a), _flat(b)
    out = sorted(set(fa) ^ set(fb))
    for k in set(fa) & set(fb):
        x, y = fa[k], fb[k]
        if not (torch.equal(x, y) if torch.is_tensor(x) and torch.is_tensor(y) else x == y):
            out.append(k)
    return sorted(out)


def test_resumed_recurrent_run_is_bit_identical(make_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    """The recurrent state at the end of a rollout is the Loop's: the checkpoint keeps it (with the
    memory task's env state), so a run resumed at 128 steps ends exactly as the uninterrupted one."""
    args = ["algo=recurrent_ppo", *TINY, "trainer.deterministic=true", "trainer.checkpoint_period_env_steps=128",
            "algo.bptt_len=8", "algo.num_minibatches=2", "algo.update_epochs=2"]  # fmt: skip
    full = tmp_path / "full"
    train(make_cfg(*args, output_dir=full))
    steps = checkpoint.step_files(full / "checkpoints")
    assert len(steps) == 2
    mid = checkpoint.load(steps[0])
    assert mid["loop"]["env_steps"] == 128
    assert any(bool(s.abs().sum() > 0) for s in mid["loop"]["policy_state"])  # mid-episode state
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copy(full / "config.yaml", resumed / "config.yaml")
    shutil.copy(steps[0], resumed / "checkpoints" / checkpoint.LAST)
    train(make_cfg(f"resume={resumed}", output_dir=tmp_path / "ignored"))
    a = checkpoint.load(full / "checkpoints" / checkpoint.LAST)
    b = checkpoint.load(resumed / "checkpoints" / checkpoint.LAST)
    assert a["loop"]["env_steps"] == b["loop"]["env_steps"] == 256
    for key in ("learner", "policy", "optimizers", "loop"):
        assert _differences(a[key], b[key]) == [], key
    assert _differences(mid["learner"], a["learner"]) != []  # the second half trained


RECURRENT_PROBE = [
    "~tuned",
    "network.core=lstm",
    "network.core_size=16",
    "trainer.total_env_steps=6144",
    "env.num_envs=8",
    "algo.num_steps=32",
    "algo.num_minibatches=4",
    "algo.update_epochs=8",
    "algo.lr=3e-3",
    "algo.ent_coef=0.0",
    "algo.clip_vloss=false",
    "algo.gamma=0.9",
    "algo.bptt_len=8",
    "trainer.checkpoint_period_env_steps=0",
    "trainer.final_eval_episodes=2",
]


@pytest.mark.parametrize(
    ("probe", "extra"),
    [
        ("ConstantReward", []),
        # the rest are slow (~10 s each): the memory probe and the rollout-vs-update unit test
        # check the recurrent path in every run
        pytest.param("ObsDependentReward", [], marks=pytest.mark.slow),
        pytest.param("TwoStepDiscount", ["algo.gae_lambda=0.95"], marks=pytest.mark.slow),
        pytest.param("ActionDependentReward", [], marks=pytest.mark.slow),
        pytest.param("ObsActionReward", [], marks=pytest.mark.slow),
    ],
)
def test_recurrent_ppo_passes_the_probes(
    make_cfg: Callable[..., DictConfig], tmp_path: Path, probe: str, extra: list[str]
) -> None:
    """The five probes of tests/probes.py (as tests/integration/test_probes.py runs them for PPO),
    with an LSTM core; values are read from the state an episode's step actually sees."""
    from d2rl.train import load_policy

    train(make_cfg("env=gym", f"env.id=d2rl-probe/{probe}-v0", *RECURRENT_PROBE, *extra))
    policy, _ = load_policy(checkpoint.load(tmp_path / "run"))

    def first_step(*obs: float) -> tuple[list[float], list[int]]:
        x = torch.tensor([[o] for o in obs])
        with torch.no_grad():
            return policy.value(x).tolist(), policy.act(x, explore=False)[0].tolist()

    if probe == "ConstantReward":
        assert first_step(0.0)[0][0] == pytest.approx(1.0, abs=0.1)
    elif probe == "ObsDependentReward":
        assert first_step(-1.0, 1.0)[0] == pytest.approx([-1.0, 1.0], abs=0.15)
    elif probe == "TwoStepDiscount":  # obs 0, then obs 1 from the state after the first step
        x0 = torch.zeros(1, 1)
        with torch.no_grad():
            _, _, state = policy.act(x0, policy.initial_state(1), explore=False)
            second = policy.value(torch.ones(1, 1), state).item()
        assert [first_step(0.0)[0][0], second] == pytest.approx([0.9, 1.0], abs=0.1)
    elif probe == "ActionDependentReward":
        values, actions = first_step(0.0)
        assert actions == [1] and values[0] == pytest.approx(1.0, abs=0.2)
    else:
        values, actions = first_step(-1.0, 1.0)
        assert actions == [0, 1] and values == pytest.approx([1.0, 1.0], abs=0.2)
