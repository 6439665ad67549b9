"""Multirun sweeps through the `d2rl` command: Hydra's basic launcher and the Optuna sweeper
(the Ray launcher is in test_ray_launcher.py). Each checks every job's folder and the
sweep-level summary written by d2rl.sweep.SweepSummary."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent
TINY = [
    "~tuned",
    "algo.num_steps=64",
    "trainer.total_env_steps=512",
    "trainer.progress_bar=false",
    "trainer.eval_period_env_steps=0",
    "trainer.checkpoint_period_env_steps=0",
    "trainer.final_eval_episodes=2",
    "logger.tensorboard=false",
]


def d2rl(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "d2rl"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HYDRA_FULL_ERROR": "1", "MPLBACKEND": "Agg", **(env or {})},
    )


def check_sweep(sweep_dir: Path, n_jobs: int) -> list[dict[str, str]]:
    """Every job folder is a complete run; the summary CSV matches the jobs' summary.json files."""
    with (sweep_dir / "sweep_summary.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["job"] for r in rows] == [str(i) for i in range(n_jobs)]
    for r in rows:
        job_dir = sweep_dir / r["job"]
        assert Path(r["dir"]) == job_dir and r["status"] == "ok"
        for name in (
            "config.yaml",
            "summary.json",
            "metrics.csv",
            "checkpoints/last.pt",
            ".hydra/overrides.yaml",
        ):
            assert (job_dir / name).exists(), name
        summary = json.loads((job_dir / "summary.json").read_text())
        assert float(r["return_mean"]) == pytest.approx(summary["final_eval"]["mean"])
        assert int(r["env_steps"]) == summary["env_steps"] == 512
        overrides = yaml.safe_load((job_dir / ".hydra/overrides.yaml").read_text())
        assert r["overrides"] == " ".join(overrides)
    png = sweep_dir / "sweep_curves.png"
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    return rows


def test_basic_multirun_two_jobs(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    r = d2rl("-m", "algo.lr=1e-4,3e-4", *TINY, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = check_sweep(sweep, 2)
    assert [float(row["algo.lr"]) for row in rows] == [1e-4, 3e-4]  # one column per swept key
    for row in rows:
        cfg = yaml.safe_load((sweep / row["job"] / "config.yaml").read_text())
        assert cfg["algo"]["lr"] == float(row["algo.lr"])
    assert "sweep summary:" in r.stderr + r.stdout


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None, reason="pip install 'd2rl[sweep]'"
)
def test_optuna_sweep_two_trials(tmp_path: Path) -> None:
    sweep = tmp_path / "hpo"
    r = d2rl(
        "-m", "+hpo=ppo_cartpole", "hydra.sweeper.n_trials=2", *TINY, f"hydra.sweep.dir={sweep}", cwd=tmp_path
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    rows = check_sweep(sweep, 2)
    # the objective Optuna maximised is the return each job's train() reported
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(max(float(row["return_mean"]) for row in rows))
    best = max(rows, key=lambda row: float(row["return_mean"]))
    assert float(best["algo.lr"]) == pytest.approx(results["best_params"]["algo.lr"])
    for row in rows:  # each trial drew its hyperparameters from the search space in conf/hpo
        lr = float(row["algo.lr"])
        assert 1e-4 <= lr <= 3e-3
        cfg = yaml.safe_load((sweep / row["job"] / "config.yaml").read_text())
        assert cfg["algo"]["lr"] == pytest.approx(lr) and cfg["trainer"]["total_env_steps"] == 512


HAS_RAY = importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is not None


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """One local Ray instance for this module (ray.init takes ~10 s here), sized for 2 cores."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=78_643_200, logging_level="warning")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.mark.skipif(not HAS_RAY, reason="pip install 'd2rl[sweep]'")
def test_ray_launcher_two_jobs_on_existing_cluster(tmp_path: Path, ray_address: str) -> None:
    sweep = tmp_path / "ray"
    r = d2rl(
        "-m", "hydra/launcher=ray_cluster", "seed=0,1", *TINY, f"hydra.sweep.dir={sweep}",
        cwd=tmp_path, env={"RAY_ADDRESS": ray_address},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"Connecting to existing Ray cluster at address: {ray_address}" in r.stderr
    rows = check_sweep(sweep, 2)
    assert [row["seed"] for row in rows] == ["0", "1"]
    # the jobs ran as Ray tasks: their log lines come back prefixed by Ray with the worker's task
    out = r.stdout + r.stderr
    assert out.count("(_run_job pid=") >= 2 and "Ray Launcher is launching 2 jobs" in out


@pytest.mark.slow
@pytest.mark.skipif(not HAS_RAY, reason="pip install 'd2rl[sweep]'")
def test_ray_launcher_local_instance(tmp_path: Path) -> None:
    sweep = tmp_path / "ray_local"
    r = d2rl("-m", "hydra/launcher=ray_local", "seed=0,1", *TINY, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Started a local Ray instance" in r.stderr
    check_sweep(sweep, 2)
