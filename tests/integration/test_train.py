"""train(cfg) end to end on real gymnasium envs: run folder, resume, load_from, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import pytest
import torch

from d2rl import checkpoint
from d2rl.errors import D2RLError
from d2rl.train import train

SMALL = [
    "~tuned",
    "trainer.total_env_steps=1024",
    "algo.num_steps=64",
    "trainer.checkpoint_period_env_steps=512",
    "trainer.log_period_env_steps=256",
]


def test_run_folder_contents(make_cfg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(*SMALL, "trainer.eval_period_env_steps=512", "logger.learning_curve=true")
    out = train(cfg)
    run = tmp_path / "run"
    assert out["env_steps"] == 1024 and out["run_dir"] == str(run)
    names = {p.name for p in run.iterdir()}
    assert {
        "config.yaml",
        "checkpoints",
        "tensorboard",
        "metrics.csv",
        "summary.json",
        "learning_curve.png",
    } <= names
    assert {p.name for p in (run / "checkpoints").iterdir()} == {
        "last.pt",
        "step_000000000512.pt",
        "step_000000001024.pt",
    }
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] == 1024 and summary["seed"] == cfg.seed
    assert summary["final_eval"]["episodes"] == 2
    assert summary["env_steps_per_s"] > 0 and summary["wall_time_s"] > 0
    assert {"torch", "lightning", "gymnasium", "hydra-core"} <= set(summary["versions"])
    assert "git_commit" in summary
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    keys = set(rows[0])
    assert {
        "env_step",
        "train/episode_return",
        "loss/policy",
        "perf/env_steps_per_s",
        "eval/return_mean",
    } <= keys
    assert [float(r["eval/return_mean"]) for r in rows if r["eval/return_mean"]][-1] == pytest.approx(
        summary["final_eval"]["mean"]
    )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert "train/episode_return" in acc.Tags()["scalars"]
    assert (run / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_same_seed_same_result(make_cfg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a = train(make_cfg(*SMALL, output_dir=tmp_path / "a"))
    b = train(make_cfg(*SMALL, output_dir=tmp_path / "b"))
    sa, sb = checkpoint.load(tmp_path / "a"), checkpoint.load(tmp_path / "b")
    for k, v in sa["learner"].items():
        assert torch.equal(v, sb["learner"][k]), k
    assert a["eval/return_mean"] == b["eval/return_mean"]


class _StopAfter(L.Callback):
    """Simulates a crash: raises after `n` iterations, after the checkpoint callback ran."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_train_batch_end(self, trainer, learner, outputs, batch, batch_idx):  # type: ignore[no-untyped-def]
        if batch_idx + 1 >= self.n:
            raise RuntimeError("simulated crash")


class _CheckStart(L.Callback):
    def __init__(self, expected: dict[str, torch.Tensor], expected_opt: dict) -> None:  # type: ignore[type-arg]
        self.expected, self.expected_opt = expected, expected_opt
        self.seen_steps: int | None = None

    def on_train_batch_start(self, trainer, learner, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        if self.seen_steps is not None:
            return
        self.seen_steps = batch.env_steps - batch.num_steps * batch.num_envs  # before this rollout
        for k, v in learner.state_dict().items():
            assert torch.equal(v, self.expected[k]), k
        got = trainer.optimizers[0].state_dict()["state"]
        for pid, s in self.expected_opt["state"].items():
            assert torch.equal(got[pid]["exp_avg"], s["exp_avg"])


def test_resume_continues_from_the_last_checkpoint(make_cfg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(*SMALL, "trainer.total_env_steps=2048", "trainer.checkpoint_period_env_steps=512")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, callbacks=[_StopAfter(3)])  # 3 x 256 steps: checkpoint at 512, crash at 768
    run = tmp_path / "run"
    saved = checkpoint.load(run)
    assert saved["loop"]["env_steps"] == 512
    check = _CheckStart(saved["learner"], saved["optimizers"][0])
    out = train(
        make_cfg("trainer.progress_bar=false", f"resume={run}", output_dir=tmp_path / "ignored"),
        callbacks=[check],
    )
    assert check.seen_steps == 512
    assert out["env_steps"] == 2048 and out["run_dir"] == str(run)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] == 2048 and summary["resumed_from"].endswith("last.pt")
    final = checkpoint.load(run)
    assert final["loop"]["env_steps"] == 2048 and final["loop"]["round"] == 8
    assert any(not torch.equal(v, saved["learner"][k]) for k, v in final["learner"].items())
    steps = [float(r["env_step"]) for r in csv.DictReader((run / "metrics.csv").open())]
    assert (
        steps == sorted(steps) and steps[-1] == 2048
    )  # rows after the checkpoint were dropped, then continued
    assert (run / "checkpoints" / "step_000000000512.pt").exists()  # no written checkpoint is lost


def test_load_from_initialises_weights_only(make_cfg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    train(make_cfg(*SMALL, output_dir=tmp_path / "first"))
    first = checkpoint.load(tmp_path / "first")
    seen: dict[str, int] = {}

    class Peek(L.Callback):
        def on_train_start(self, trainer, learner) -> None:  # type: ignore[no-untyped-def]
            seen["steps"] = 0
            for k, v in learner.state_dict().items():
                assert torch.equal(v, first["learner"][k]), k

    out = train(
        make_cfg(*SMALL, f"load_from={tmp_path / 'first'}", output_dir=tmp_path / "second"),
        callbacks=[Peek()],
    )
    assert seen["steps"] == 0 and out["env_steps"] == 1024


def test_any_gymnasium_id_and_max_episode_steps(make_cfg) -> None:  # type: ignore[no-untyped-def]
    out = train(make_cfg("env=gym", "env.id=Acrobot-v1", "env.max_episode_steps=50", *SMALL))
    assert out["eval/return_mean"] >= -50.0  # every episode is cut at 50 steps of reward -1


def test_continuous_actions_train(make_cfg) -> None:  # type: ignore[no-untyped-def]
    out = train(make_cfg("env=pendulum", *SMALL, "algo.normalize_obs=true", "algo.normalize_reward=true"))
    assert out["env_steps"] == 1024


def test_user_errors_are_d2rl_errors(make_cfg) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(D2RLError, match="unknown gymnasium env id 'NoSuchEnv-v0'"):
        train(make_cfg("env=gym", "env.id=NoSuchEnv-v0"))
    with pytest.raises(D2RLError, match="supports discrete, box actions.*multi_binary"):
        train(make_cfg("env=gym", "env.id=d2rl-probe/MultiBinaryAction-v0"))
    with pytest.raises(D2RLError, match="must divide"):
        train(make_cfg("algo.num_minibatches=3"))


def test_async_vectorization(make_cfg) -> None:  # type: ignore[no-untyped-def]
    out = train(make_cfg(*SMALL, "env.vectorization=async", "env.num_envs=2"))
    assert out["env_steps"] == 1024


def test_a_recurrent_core_is_refused_by_a_feed_forward_algorithm(make_cfg) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(D2RLError, match="no recurrent policy, so network.core=lstm cannot be used"):
        train(make_cfg(*SMALL, "algo=ppg", "network.core=lstm"))
