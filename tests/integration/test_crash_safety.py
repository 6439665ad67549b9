"""Crash safety: SIGKILL at random moments (and in the middle of checkpoint writes) never leaves
an unloadable last checkpoint, and ``d2rl resume=`` carries the run to completion; NaN/inf in a
loss, a parameter or an observation stops the run naming the metric and the step (or skips the
update with ``trainer.nan_policy=skip``) without overwriting the last good checkpoint."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from d2rl import checkpoint
from d2rl.errors import D2RLError
from d2rl.nan_guard import NonFiniteError
from d2rl.train import train
from faults import PoisonParameters

BIN = Path(sys.executable).parent
QUIET = [
    "trainer.progress_bar=false",
    "trainer.eval_period_env_steps=0",
    "trainer.final_eval_episodes=1",
    "logger.learning_curve=false",
]


def _all_complete_checkpoints_load(run: Path) -> int:
    """Every ``step_*.pt`` and ``last.pt`` loads (temp files may lie around: they are not checkpoints)."""
    ckpt_dir = run / "checkpoints"
    files = [*checkpoint.step_files(ckpt_dir), ckpt_dir / checkpoint.LAST]
    n = 0
    for p in files:
        if p.exists():
            checkpoint.load(p)
            n += 1
    return n


def _has_checkpoint(run: Path) -> bool:
    try:
        checkpoint.resolve(run)
    except D2RLError:
        return False
    return True


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_to_completion(tmp_path: Path) -> None:
    """A DQN run whose checkpoints carry a replay (so writes take a while), killed 5 times: at random
    moments and as soon as a checkpoint temp file appears; each time the last complete checkpoint
    loads and the run resumes from it; the last attempt runs to the end."""
    run = tmp_path / "run"
    total = 6000
    fresh = [
        str(BIN / "d2rl"),
        "algo=dqn",
        "env=cartpole",
        "algo.learning_starts_env_steps=500",
        "replay.capacity=200000",
        f"trainer.total_env_steps={total}",
        "trainer.checkpoint_period_env_steps=200",
        "trainer.keep_checkpoints=3",
        f"output_dir={run}",
        *QUIET,
    ]
    rng = random.Random(14)
    kills, resumes, mid_write = 0, 0, 0
    for attempt in range(12):
        resuming = _has_checkpoint(run)
        cmd = [str(BIN / "d2rl"), f"resume={run}", "trainer.progress_bar=false"] if resuming else fresh
        resumes += resuming
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if kills < 5:
            # attempt 0: at a random moment of start-up or training; later attempts: once the run
            # has a checkpoint, either a random moment after it (even) or the instant the next
            # checkpoint's temp file appears, i.e. mid-write (odd)
            deadline = time.monotonic() + 300
            delay = rng.uniform(2, 10) if attempt == 0 else rng.uniform(0.2, 4)
            armed_at = time.monotonic() if attempt == 0 else None
            while proc.poll() is None and time.monotonic() < deadline:
                if armed_at is None and _has_checkpoint(run):
                    armed_at = time.monotonic()
                if armed_at is not None:
                    if attempt % 2 == 1 and any((run / "checkpoints").glob(".step_*.tmp")):
                        mid_write += 1
                        break  # a checkpoint is being written right now
                    if attempt % 2 == 0 and time.monotonic() > armed_at + delay:
                        break
                time.sleep(0.002)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        _, err = proc.communicate(timeout=600)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, err[-3000:]
        if _has_checkpoint(run):
            assert _all_complete_checkpoints_load(run) >= 1
            state = checkpoint.load(run)
            assert state["loop"]["env_steps"] <= total
    else:
        pytest.fail("the run never completed")
    assert kills >= 3 and resumes >= 2 and mid_write >= 1, (kills, resumes, mid_write)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] >= total
    assert _all_complete_checkpoints_load(run) >= 1
    # retention held across the restarts: at most 3 step files (+ last.pt, best.pt)
    assert len(checkpoint.step_files(run / "checkpoints")) <= 3


PPO = ["algo=ppo", "env=cartpole", "env.num_envs=4", "algo.num_steps=32", "trainer.total_env_steps=2048"]


def test_nan_in_a_loss_stops_and_keeps_the_last_good_checkpoint(make_cfg) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(*PPO, "trainer.checkpoint_period_env_steps=256")
    with pytest.raises(NonFiniteError, match=r"is nan at env step 1280 \(learner step 10\)"):
        train(cfg, callbacks=[PoisonParameters(at=9)])
    run = Path(cfg.output_dir)
    last = checkpoint.load(run)
    assert last["loop"]["env_steps"] == 1024  # the last checkpoint before the NaN
    for name, value in last["learner"].items():
        if value.is_floating_point():
            assert torch.isfinite(value).all(), name
    assert all(int(p.stem.split("_")[1]) <= 1024 for p in checkpoint.step_files(run / "checkpoints"))


def test_nan_policy_skip_undoes_the_update_and_finishes(make_cfg, caplog) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(*PPO, "trainer.nan_policy=skip")
    with caplog.at_level("WARNING"):
        result = train(cfg, callbacks=[PoisonParameters(at=9)])
    assert result["env_steps"] == 2048
    assert any(
        "update skipped" in r.getMessage() and "env step 1280" in r.getMessage() for r in caplog.records
    )
    final = checkpoint.load(Path(cfg.output_dir))
    assert all(torch.isfinite(v).all() for v in final["learner"].values() if v.is_floating_point())


NAN_ENV = '''
import gymnasium as gym
import numpy as np


class NaNAt(gym.Env):
    """CartPole-like 4-d observations; the observation of step 50 of an episode is NaN."""

    observation_space = gym.spaces.Box(-1, 1, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(4, np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.full(4, np.nan if self.t == 50 else 0.1, np.float32)
        return obs, 1.0, False, self.t >= 100, {}


gym.register("NaNAt-v0", entry_point=NaNAt)
'''


def test_nan_observation_stops_the_real_command_with_exit_3(tmp_path: Path) -> None:
    (tmp_path / "nan_env_mod.py").write_text(NAN_ENV)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    run = tmp_path / "run"
    proc = subprocess.run(
        [
            str(BIN / "d2rl"),
            "env=gym",
            "env.id=nan_env_mod:NaNAt-v0",
            "env.num_envs=1",
            "algo.num_steps=16",
            "trainer.total_env_steps=256",
            "trainer.checkpoint_period_env_steps=16",
            f"output_dir={run}",
            *QUIET,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [lines[-1]] and "Traceback" not in proc.stderr
    assert lines[-1].startswith("d2rl: error: observation is non-finite at env step 50 (env 0")
    assert checkpoint.load(run)["loop"]["env_steps"] == 48  # written before the NaN, not after


def _state(step: int) -> dict[str, Any]:
    return {
        "algo": "x",
        "config": "",
        "learner": {"w": torch.full((3,), float(step))},
        "loop": {"env_steps": step},
    }


def test_retention_keeps_the_newest_k_plus_best(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints"
    for step in range(1, 7):
        checkpoint.save(ckpt, _state(step), step, keep=2, best=step == 2)
    names = sorted(p.name for p in ckpt.iterdir())
    assert names == [checkpoint.BEST, checkpoint.LAST, "step_000000000005.pt", "step_000000000006.pt"]
    assert checkpoint.load(ckpt / checkpoint.BEST)["loop"]["env_steps"] == 2  # its own bytes survive
    assert checkpoint.load(tmp_path)["loop"]["env_steps"] == 6


def test_killed_between_step_file_and_last_pointer(tmp_path: Path) -> None:
    """A step file written but ``last.pt`` not yet moved (and a writer's temp file left behind):
    resume takes the newest complete step file; temp files of dead writers are swept."""
    ckpt = tmp_path / "checkpoints"
    checkpoint.save(ckpt, _state(1), 1)
    (ckpt / checkpoint.LAST).unlink()
    stale = ckpt / ".step_000000000002.pt.999999999.abcd.tmp"  # pid 999999999 does not exist
    stale.write_bytes(b"half a checkpoint")
    assert checkpoint.resolve(tmp_path).name == "step_000000000001.pt"
    checkpoint.save(ckpt, _state(3), 3, keep=5)
    assert not stale.exists()
    assert checkpoint.load(tmp_path)["loop"]["env_steps"] == 3


def test_best_checkpoint_follows_periodic_evaluation(make_cfg) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(
        *PPO,
        "trainer.total_env_steps=1024",
        "trainer.eval_period_env_steps=256",
        "trainer.eval_episodes=2",
        "trainer.checkpoint_period_env_steps=256",
        "trainer.keep_checkpoints=1",
    )
    train(cfg)
    ckpt = Path(cfg.output_dir) / "checkpoints"
    assert len(checkpoint.step_files(ckpt)) == 1 and (ckpt / checkpoint.BEST).is_file()
    best = checkpoint.load(ckpt / checkpoint.BEST)["loop"]
    assert best["best_return"] is not None and best["env_steps"] <= 1024
