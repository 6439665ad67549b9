"""SAC/TD3 end to end: every new env preset runs, resume restores the replay buffer, clear errors."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest

from d2rl import checkpoint
from d2rl.errors import D2RLError
from d2rl.train import train

TINY = [
    "trainer.total_env_steps=256",
    "trainer.checkpoint_period_env_steps=0",
    "trainer.final_eval_episodes=1",
    "env.num_envs=2",
    "env.max_episode_steps=50",
    "algo.hidden_sizes=[32]",
    "algo.batch_size=32",
    "algo.learning_starts_env_steps=64",
    "algo.steps_per_iteration=32",
    "replay.capacity=1024",
]


@pytest.mark.parametrize(
    ("algo", "env"),
    [
        ("sac", "lunarlander_continuous"),
        ("td3", "bipedalwalker"),
        ("sac", "reacher"),
        ("ddpg", "halfcheetah"),
        ("sac", "dmc_cartpole_swingup"),
        ("tac", "dmc_walker_walk"),
    ],
)
def test_env_presets_train(make_cfg, algo: str, env: str) -> None:  # type: ignore[no-untyped-def]
    out = train(make_cfg(f"algo={algo}", f"env={env}", "~tuned", *TINY))
    assert out["env_steps"] == 256


class _CrashAt(L.Callback):
    def __init__(self, iterations: int) -> None:
        self.iterations = iterations

    def on_train_batch_end(self, trainer, agent, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        if agent.iteration >= self.iterations:
            raise RuntimeError("simulated crash")


class _SeenAtStart(L.Callback):
    def on_train_start(self, trainer, agent) -> None:  # type: ignore[no-untyped-def]
        self.env_steps, self.stored = agent.env_steps, len(agent.buffer)


def test_resume_restores_the_replay_buffer(make_cfg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(
        "algo=sac",
        "env=pendulum",
        "~tuned",
        *TINY,
        "trainer.total_env_steps=512",
        "trainer.checkpoint_period_env_steps=128",
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, callbacks=[_CrashAt(3)])  # 3 x 64 steps: checkpoint at 128, crash at 192
    run = tmp_path / "run"
    saved = checkpoint.load(run)
    assert saved["counters"]["env_steps"] == 128
    assert int(saved["agent"]["replay.valid"].sum()) == 128  # every transition so far
    seen = _SeenAtStart()
    out = train(make_cfg("trainer.progress_bar=false", f"resume={run}", output_dir=tmp_path / "x"), [seen])
    assert seen.env_steps == 128 and seen.stored == 128
    assert out["env_steps"] == 512


def test_action_space_mismatch_is_a_clear_error(make_cfg) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(D2RLError, match="supports box actions"):
        train(make_cfg("algo=td3", "env=cartpole", "~tuned", *TINY))


def test_pixel_observations_are_a_clear_error(make_cfg) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(D2RLError, match="vector observations"):
        train(
            make_cfg(
                "algo=sac",
                "env=dmc_cartpole_swingup",
                "~tuned",
                *TINY,
                "+env.kwargs.pixels=true",
                "network=nature_cnn",
            )
        )
