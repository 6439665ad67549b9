"""DQN end to end: replay (with priorities) survives a checkpoint/resume; action-space errors."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from d2rl import checkpoint
from d2rl.errors import D2RLError
from d2rl.train import train

SMALL = [
    "algo=rainbow",
    "replay=prioritized",
    "env.num_envs=2",
    "network.hidden_sizes=[16]",
    "algo.iteration_env_steps=128",
    "algo.learning_starts_env_steps=128",
    "algo.batch_size=16",
    "algo.update_period_env_steps=8",
    "replay.capacity=2000",
    "trainer.total_env_steps=768",
    "trainer.checkpoint_period_env_steps=256",
]


class _StopAfter(L.Callback):
    def __init__(self, n: int) -> None:
        self.n = n

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        if batch_idx + 1 == self.n:
            raise RuntimeError("simulated crash")


class _CheckBuffer(L.Callback):
    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        self.state = state
        self.checked = False

    def on_train_start(self, trainer, agent) -> None:  # type: ignore[no-untyped-def]
        now = agent.buffer.state_dict()
        for k in ("obs", "reward", "valid", "priorities"):
            assert torch.equal(now[k], self.state[f"replay/{k}"]), k
        assert float(agent.gradient_steps_done) > 0
        self.checked = True


def test_resume_restores_replay_and_priorities(make_cfg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(make_cfg(*SMALL), callbacks=[_StopAfter(3)])  # checkpoint at 256, crash at 384
    run = tmp_path / "run"
    saved = checkpoint.load(run)
    assert saved["counters"]["env_steps"] == 256
    assert int(saved["agent"]["replay/valid"].sum()) == 256
    check = _CheckBuffer(saved["agent"])
    out = train(
        make_cfg("trainer.progress_bar=false", f"resume={run}", output_dir=tmp_path / "x"), callbacks=[check]
    )
    assert check.checked and out["env_steps"] == 768
    final = checkpoint.load(run)
    assert int(final["agent"]["replay/valid"].sum()) == 768


def test_replay_can_stay_out_of_checkpoints(make_cfg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    train(make_cfg(*SMALL, "replay.save_in_checkpoint=false", "trainer.total_env_steps=256"))
    assert not any(k.startswith("replay/") for k in checkpoint.load(tmp_path / "run")["agent"])


def test_value_based_algorithms_refuse_box_actions(make_cfg) -> None:  # type: ignore[no-untyped-def]
    for algo in ("dqn", "rainbow", "iqn", "fqf", "mdqn", "miqn"):
        with pytest.raises(D2RLError, match="algorithm 'dqn' supports discrete actions.*box"):
            train(make_cfg(f"algo={algo}", "env=pendulum"))


def test_bad_switch_combinations_are_d2rl_errors(make_cfg) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(D2RLError, match="munchausen"):
        train(make_cfg("algo=rainbow", "algo.munchausen=true"))
    with pytest.raises(D2RLError, match="distributional"):
        train(make_cfg("algo=dqn", "algo.distributional=qr"))
