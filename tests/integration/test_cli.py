"""The console scripts as a user runs them (subprocesses, real files)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent
TINY = [
    "~tuned",
    "trainer.progress_bar=false",
    "trainer.eval_period_env_steps=0",
    "trainer.final_eval_episodes=2",
    "logger.learning_curve=false",
]


def run(cmd: str, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / cmd), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )


def test_help_and_cfg_job(tmp_path: Path) -> None:
    h = run("d2rl", "--help", cwd=tmp_path)
    assert h.returncode == 0 and h.stdout.startswith("d2rl: train a reinforcement-learning agent"), h.stdout[:200]
    groups = dict(line.split(": ", 1) for line in h.stdout.splitlines() if line.startswith(("algo: ", "env: ")))
    assert "ppo" in groups["algo"].split(", ") and "cartpole" in groups["env"].split(", ")
    r = run(
        "d2rl",
        "algo=ppo",
        "env=cartpole",
        "network=mlp",
        "seed=3",
        "algo.lr=1e-3",
        "trainer.total_env_steps=50000",
        "--cfg",
        "job",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(r.stdout)
    assert cfg["seed"] == 3 and cfg["algo"]["lr"] == 1e-3 and cfg["trainer"]["total_env_steps"] == 50000
    assert cfg["env"]["id"] == "CartPole-v1" and cfg["network"]["hidden_sizes"] == [64, 64]
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["algo=nope"], "unknown algorithm 'nope'"),
        (["env=nope"], "unknown env config 'nope'"),
        (["env=gym", "env.id=NoSuchEnv-v0"], "unknown gymnasium env id 'NoSuchEnv-v0'"),
        (["resume=/no/such/run"], "does not exist"),
        (["algo.num_minibatches=7"], "must divide"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], pattern: str) -> None:
    r = run("d2rl", *args, *TINY, cwd=tmp_path)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("d2rl: error:")]
    assert len(lines) == 1 and pattern in lines[0], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.skipif(importlib.util.find_spec("Box2D") is not None, reason="Box2D is installed")
def test_missing_suite_package_gives_install_hint(tmp_path: Path) -> None:
    r = run("d2rl", "env=lunarlander", *TINY, cwd=tmp_path)
    assert r.returncode == 2 and "pip install 'd2rl[box2d]'" in r.stderr and "Traceback" not in r.stderr


def test_wrong_key_or_type_fails_at_compose_time(tmp_path: Path) -> None:
    r = run("d2rl", "algo.lrr=1", cwd=tmp_path)
    assert r.returncode == 2 and "unknown config key 'algo.lrr'; did you mean `algo.lr`?" in r.stderr
    r = run("d2rl", "trainer.total_env_steps=lots", cwd=tmp_path)
    assert r.returncode != 0 and "total_env_steps" in r.stderr
    assert not list(tmp_path.glob("outputs/*/*/checkpoints"))


def test_train_then_eval_with_video(tmp_path: Path) -> None:
    r = run("d2rl", *TINY, "trainer.total_env_steps=1024", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (run_dir,) = list(tmp_path.glob("outputs/*/*"))
    assert (run_dir / "checkpoints" / "last.pt").exists() and (run_dir / ".hydra" / "config.yaml").exists()
    e = run("d2rl-eval", f"checkpoint={run_dir}", "episodes=3", cwd=tmp_path)
    assert e.returncode == 0, e.stderr
    assert "over 3 episodes" in e.stdout
    if importlib.util.find_spec("moviepy") is None or importlib.util.find_spec("pygame") is None:
        pytest.skip("video extra not installed")
    v = run(
        "d2rl-eval",
        f"checkpoint={run_dir / 'checkpoints' / 'last.pt'}",
        "episodes=1",
        "video=true",
        cwd=tmp_path,
    )
    assert v.returncode == 0, v.stderr
    (mp4,) = list((run_dir / "videos").glob("*.mp4"))
    assert mp4.stat().st_size > 1000
    bad = tmp_path / "junk.pt"
    bad.write_text("not a checkpoint")
    b = run("d2rl-eval", f"checkpoint={bad}", cwd=tmp_path)
    assert b.returncode == 2 and "not a readable d2rl checkpoint" in b.stderr


def test_kill_minus_9_then_resume(tmp_path: Path) -> None:
    args = [*TINY, "trainer.total_env_steps=40960", "trainer.checkpoint_period_env_steps=2048"]
    proc = subprocess.Popen(
        [str(BIN / "d2rl"), *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob("outputs/*/*/checkpoints/step_000000004096.pt")):
        assert proc.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run_dir,) = list(tmp_path.glob("outputs/*/*"))
    assert not (run_dir / "summary.json").exists()
    written = sorted(p.name for p in (run_dir / "checkpoints").glob("step_*.pt"))
    r = run("d2rl", f"resume={run_dir}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] == 40960 and summary["resumed_from"]
    after = sorted(p.name for p in (run_dir / "checkpoints").glob("step_*.pt"))
    assert set(written) <= set(after) and after[-1] == "step_000000040960.pt"
    assert list(tmp_path.glob("outputs/*/*")) == [run_dir]  # resume wrote into the same run folder
    r2 = run("d2rl", f"resume={run_dir}", "seed=5", cwd=tmp_path)
    assert r2.returncode == 2 and "drop the other overrides: seed=5" in r2.stderr
