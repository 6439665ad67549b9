"""Control of a distributed run through the real `d2rl` command: an unreachable Ray address fails
in seconds with one line; SIGTERM stops the actors, writes a checkpoint (learner, replay shards,
counters) and shuts down the Ray instance d2rl started; the run resumes with another actor count."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

BIN = Path(sys.executable).parent
SMALL = [
    "algo=dqn",
    "env=cartpole",
    "distributed=apex",
    "distributed.num_cpus=2",
    "distributed.actor_pull_period_env_steps=32",
    "network.hidden_sizes=[32]",
    "algo.learning_starts_env_steps=256",
    "algo.batch_size=32",
    "trainer.progress_bar=false",
    "trainer.eval_period_env_steps=0",
    "trainer.final_eval_episodes=2",
    "trainer.log_period_env_steps=128",
    "logger.tensorboard=false",
    "logger.learning_curve=false",
]


def env() -> dict[str, str]:
    e = {**os.environ, "HYDRA_FULL_ERROR": "0", "MPLBACKEND": "Agg"}
    e.pop("RAY_ADDRESS", None)
    return e


@pytest.mark.parametrize("how", ["override", "RAY_ADDRESS"])
def test_unreachable_address_fails_in_seconds_with_one_line(tmp_path: Path, how: str) -> None:
    args = [str(BIN / "d2rl"), *SMALL, f"output_dir={tmp_path / 'run'}", "distributed.connect_timeout_s=2"]
    e = env()
    if how == "override":
        args.append("distributed.address=127.0.0.1:9")
    else:
        e["RAY_ADDRESS"] = "127.0.0.1:9"
    t0 = time.monotonic()
    r = subprocess.run(args, capture_output=True, text=True, timeout=120, env=e)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert lines[-1].startswith("d2rl: error: cannot reach the Ray cluster at distributed.address=127.0.0.1:9")
    assert "Traceback" not in r.stderr
    # the budget covers the command's own start-up (imports, composing the config) on a loaded machine
    assert time.monotonic() - t0 < 60


def last_env_step(run: Path) -> int:
    path = run / "metrics.csv"
    if not path.exists():
        return 0
    with path.open(newline="") as f:
        steps = [int(float(r["env_step"])) for r in csv.DictReader(f)]
    return max(steps, default=0)


def test_sigterm_checkpoints_and_resumes_with_fewer_actors(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [str(BIN / "d2rl"), *SMALL, f"output_dir={run}", "trainer.total_env_steps=3000",
            "trainer.checkpoint_period_env_steps=0"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    deadline = time.monotonic() + 300
    while last_env_step(run) < 512 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert proc.poll() is None, "the run ended before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert "Ray: stopped the instance d2rl started" in out + err  # (Hydra logs INFO to stdout)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    slots = state["storage"]["replay_slots"]
    assert sorted(slots) == [0, 1]  # one replay slot per actor
    stopped_at = state["loop"]["env_steps"]
    assert 512 <= stopped_at < 3000
    assert state["loop"]["learner_updates"] > 0

    r = subprocess.run(
        [str(BIN / "d2rl"), f"resume={run}", "distributed.num_actors=1", "trainer.progress_bar=false"],
        capture_output=True, text=True, timeout=400, env=env(),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["num_actors"] == 1
    assert summary["env_steps"] >= 3000
    assert summary["learner_updates"] > state["loop"]["learner_updates"]
    with (run / "metrics.csv").open(newline="") as f:
        sizes = [float(r["replay/size"]) for r in csv.DictReader(f) if r.get("replay/size")]
    # the saved replay came back: the resumed shards held more than this session inserted
    assert max(sizes) >= summary["env_steps"] - 64
