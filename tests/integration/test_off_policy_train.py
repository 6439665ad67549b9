"""SAC/TD3 end to end: every env preset runs, pixels train (CarRacing, dm_control), resume restores
the replay buffer, clear errors."""

from __future__ import annotations

import csv
import importlib.util
import math
from pathlib import Path

import lightning as L
import pytest
import torch

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
    "algo.round_env_steps=64",
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


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_prioritized_replay_trains(make_cfg, tmp_path: Path, algo: str) -> None:  # type: ignore[no-untyped-def]
    """replay=prioritized: TD errors become priorities and beta is annealed by env steps."""
    out = train(make_cfg(f"algo={algo}", "env=pendulum", "~tuned", *TINY, "replay=prioritized"))
    assert out["env_steps"] == 256
    storage = checkpoint.load(tmp_path / "run")["storage"]
    assert float(storage["max_priority"]) != 1.0  # written back by the learner


class _CrashAt(L.Callback):
    def __init__(self, rounds: int) -> None:
        self.rounds = rounds

    def on_train_batch_end(self, trainer, learner, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        if batch.round + 1 >= self.rounds:
            raise RuntimeError("simulated crash")


class _SeenAtStart(L.Callback):
    """The replay and env steps the first round after a resume sees (that round's 64 steps included)."""

    def on_train_batch_start(self, trainer, learner, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        if not hasattr(self, "env_steps"):
            self.env_steps, self.stored = batch.env_steps, len(batch.storage)


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
    assert saved["loop"]["env_steps"] == 128
    assert int(saved["storage"]["valid"].sum()) == 128  # every transition so far
    seen = _SeenAtStart()
    out = train(make_cfg("trainer.progress_bar=false", f"resume={run}", output_dir=tmp_path / "x"), [seen])
    assert seen.env_steps == 128 + 64 and seen.stored == 128 + 64
    assert out["env_steps"] == 512


def test_action_space_mismatch_is_a_clear_error(make_cfg) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(D2RLError, match="supports box actions") as err:
        train(make_cfg("algo=td3", "env=cartpole", "~tuned", *TINY))
    assert "\n" not in str(err.value)


def test_pixels_with_a_vector_network_are_a_clear_error(make_cfg) -> None:  # type: ignore[no-untyped-def]
    """SAC's default network (identity) reads vectors: pixels need a conv net, said in one line."""
    with pytest.raises(D2RLError, match="network=identity takes vector observations") as err:
        train(
            make_cfg(
                "algo=sac",
                "env=dmc_cartpole_swingup",
                "~tuned",
                *TINY,
                "env.kwargs.pixels=true",
                "env.kwargs.image_size=36",
            )
        )
    assert "\n" not in str(err.value) and "network=nature_cnn" in str(err.value)


# -- pixels: one shared conv encoder (critic-trained), uint8 replay ------------------------------
PIXEL_TINY = [
    *TINY,
    "algo.hidden_sizes=[16]",
    "algo.batch_size=16",
    "network=nature_cnn",
    "network.features=32",
    "env.max_episode_steps=40",
    "replay.capacity=512",
]
PIXEL_RUNS = {
    "sac-carracing": ("Box2D", ["algo=sac", "env=carracing"]),
    "td3-carracing": ("Box2D", ["algo=td3", "env=carracing"]),
    "sac_discrete-carracing": (
        "Box2D",
        ["algo=sac_discrete", "env=carracing", "env.kwargs.continuous=false"],
    ),
    "sac-dmc_pixels": (
        "dm_control",
        ["algo=sac", "env=dmc_cartpole_swingup", "env.kwargs.pixels=true", "env.kwargs.image_size=64"],
    ),
    "ddpg-dmc_pixels": (
        "dm_control",
        ["algo=ddpg", "env=dmc_cartpole_swingup", "env.kwargs.pixels=true", "env.kwargs.image_size=64"],
    ),
}


# TD3 and DDPG share the deterministic actor's path, SAC runs it on CarRacing: the others are `slow`
SLOW_PIXEL_RUNS = {"td3-carracing", "sac-dmc_pixels"}


@pytest.mark.parametrize(
    "run", [pytest.param(r, marks=pytest.mark.slow) if r in SLOW_PIXEL_RUNS else r for r in sorted(PIXEL_RUNS)]
)
def test_pixel_runs_train(make_cfg, tmp_path: Path, run: str) -> None:  # type: ignore[no-untyped-def]
    module, overrides = PIXEL_RUNS[run]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed")
    out = train(make_cfg(*overrides, "~tuned", *PIXEL_TINY))
    assert out["env_steps"] == 256
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    losses = [float(r["loss/q"]) for r in rows if r.get("loss/q")]
    assert losses and all(math.isfinite(v) for v in losses)
    saved = checkpoint.load(tmp_path / "run")
    assert saved["storage"]["obs"].dtype == torch.uint8  # pixels stay uint8 in replay
    assert any(k.startswith("critics.target_encoder.") for k in saved["learner"])
