"""R2D2 end to end: it solves the memory task (a cue seen only at the first step), d2rl-eval plays
the checkpoint with the recurrent state carried; sequence replay survives checkpoint/resume; every
core trains; DQN's value-rescaling switch trains; bad sequence settings are one-line errors."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from d2rl import checkpoint
from d2rl.cli import evaluate_checkpoint
from d2rl.config import EvalConfig
from d2rl.errors import D2RLError
from d2rl.train import train

# memory_cue with 4 steps: the cue (step 0) decides the reward of the last action (step 3)
MEMORY_FAST = [
    "algo=r2d2",
    "env=memory_cue",
    "~tuned",
    "env.kwargs.length=4",
    "network.hidden_sizes=[32]",
    "network.core_size=32",
    "algo.seq_len=8",
    "algo.seq_overlap=4",
    "algo.burn_in=2",
    "algo.n_step=3",
    "algo.lr=1e-3",
    "algo.target_update_period=100",
    "algo.learning_starts_env_steps=1000",
    "trainer.total_env_steps=8000",
    "trainer.final_eval_episodes=20",
    "trainer.checkpoint_period_env_steps=0",
    "logger.tensorboard=false",
]


def _losses(run: Path) -> list[float]:
    with (run / "metrics.csv").open(newline="") as f:
        return [float(r["loss/q"]) for r in csv.DictReader(f) if r.get("loss/q")]


def test_r2d2_solves_memory_cue_and_d2rl_eval_carries_the_state(make_cfg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = train(make_cfg(*MEMORY_FAST, "seed=1"))
    assert out["eval/return_mean"] >= 0.9  # memoryless: 0 on average
    played = evaluate_checkpoint(
        OmegaConf.structured(EvalConfig(checkpoint=str(tmp_path / "run"), episodes=20))
    )
    assert played["return_mean"] >= 0.9


SMALL = [
    "algo=r2d2",
    "env=memory_cue",
    "~tuned",
    "env.num_envs=2",
    "network.hidden_sizes=[16]",
    "network.core_size=16",
    "algo.seq_len=6",
    "algo.seq_overlap=3",
    "algo.burn_in=2",
    "algo.batch_size=8",
    "algo.iteration_env_steps=64",
    "algo.learning_starts_env_steps=64",
    "algo.update_period_env_steps=16",
    "algo.target_update_period=2",
    "trainer.total_env_steps=256",
]


class _StopAfter(L.Callback):
    def __init__(self, n: int) -> None:
        self.n = n

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        if batch_idx + 1 == self.n:
            raise RuntimeError("simulated crash")


class _CheckReplay(L.Callback):
    def __init__(self, state: dict[str, torch.Tensor], updates: int) -> None:
        self.state, self.updates, self.checked = state, updates, False

    def on_train_start(self, trainer, learner) -> None:  # type: ignore[no-untyped-def]
        now = trainer.train_dataloader.storage.state_dict()
        assert now.keys() == self.state.keys()
        for k in now:
            assert torch.equal(now[k], self.state[k]), k
        assert int(learner.updates_done) == self.updates > 0
        self.checked = True


def test_resume_restores_sequence_replay_priorities_and_counters(make_cfg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(make_cfg(*SMALL, "trainer.checkpoint_period_env_steps=128"), callbacks=[_StopAfter(3)])
    run = tmp_path / "run"
    saved = checkpoint.load(run)
    assert saved["loop"]["env_steps"] == 128
    assert int(saved["storage"]["inserted"]) > 0 and saved["storage"]["state_0"].shape[1:] == (1, 16)
    assert saved["storage"]["priorities"].max() > 0
    check = _CheckReplay(saved["storage"], int(saved["learner"]["updates_done"]))
    out = train(make_cfg(f"resume={run}", output_dir=tmp_path / "x"), callbacks=[check])
    assert check.checked and out["env_steps"] == 256
    final = checkpoint.load(run)
    assert int(final["storage"]["inserted"]) > int(saved["storage"]["inserted"])
    played = evaluate_checkpoint(OmegaConf.structured(EvalConfig(checkpoint=str(run), episodes=2)))
    assert played["episodes"] == 2 and played["env_steps"] == 256


@pytest.mark.parametrize("core", ["gru", "dnc", "transformer"])
def test_other_cores_train(make_cfg, tmp_path: Path, core: str) -> None:  # type: ignore[no-untyped-def]
    extra = ["network.dnc_memory_slots=4", "network.dnc_word_size=4", "network.dnc_read_heads=1"]
    out = train(make_cfg(*SMALL, f"network.core={core}", "network.transformer_memory_steps=4", *extra))
    losses = _losses(tmp_path / "run")
    assert out["env_steps"] == 256 and losses and all(math.isfinite(x) for x in losses)


def test_r2d2_needs_a_core_and_sane_sequences(make_cfg) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(D2RLError, match="recurrent core"):
        train(make_cfg(*SMALL, "network.core=none"))
    with pytest.raises(D2RLError, match="seq_overlap"):
        train(make_cfg(*SMALL, "algo.seq_overlap=6"))


@pytest.mark.parametrize("algo", ["dqn", "mdqn"])
def test_dqn_with_value_rescaling_trains(make_cfg, tmp_path: Path, algo: str) -> None:  # type: ignore[no-untyped-def]
    out = train(
        make_cfg(
            f"algo={algo}",
            "algo.value_rescaling=true",
            "env.num_envs=2",
            "network.hidden_sizes=[16]",
            "algo.learning_starts_env_steps=64",
            "algo.iteration_env_steps=64",
            "algo.batch_size=16",
            "trainer.total_env_steps=256",
        )
    )
    losses = _losses(tmp_path / "run")
    assert out["env_steps"] == 256 and losses and all(math.isfinite(x) for x in losses)
    assert OmegaConf.load(tmp_path / "run" / "config.yaml").algo.value_rescaling is True
