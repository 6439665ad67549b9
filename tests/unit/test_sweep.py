import csv
import json
from pathlib import Path

from d2rl.sweep import summarize_sweep


def _job(sweep: Path, name: str, overrides: list[str], ret: float | None) -> None:
    d = sweep / name
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if ret is not None:
        (d / "summary.json").write_text(
            json.dumps({"final_eval": {"mean": ret, "std": 0.0}, "env_steps": 100, "wall_time_s": 1.0})
        )
        (d / "metrics.csv").write_text("env_step,train/episode_return\n10,1.0\n20,\n30,3.0\n")


def test_summary_csv_and_plot(tmp_path: Path) -> None:
    for i, (lr, ret) in enumerate([("1e-4", 5.0), ("3e-4", None), ("1e-3", 7.0)] * 4):
        _job(tmp_path, str(i), [f"algo.lr={lr}", "seed=1", f"+x={i}"], ret)
    rows = summarize_sweep(tmp_path)
    assert [r["job"] for r in rows] == [str(i) for i in range(12)]  # numeric order: 2 before 10
    with (tmp_path / "sweep_summary.csv").open(newline="") as f:
        table = list(csv.DictReader(f))
    assert "algo.lr" in table[0] and "x" in table[0] and "seed" not in table[0]  # only swept keys
    assert table[0]["return_mean"] == "5.0" and table[0]["status"] == "ok"
    assert table[1]["status"] == "failed" and table[1]["return_mean"] == ""  # a job that left no summary
    assert table[2]["overrides"] == "algo.lr=1e-3 seed=1 +x=2"
    assert (tmp_path / "sweep_curves.png").stat().st_size > 1000


def test_empty_sweep_writes_nothing(tmp_path: Path) -> None:
    assert summarize_sweep(tmp_path) == []
    assert not (tmp_path / "sweep_summary.csv").exists()


def test_job_end_marks_failures_and_keeps_the_summary_current(tmp_path: Path) -> None:
    from hydra.core.utils import JobReturn, JobStatus
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from d2rl.sweep import SweepSummary

    _job(tmp_path, "0", ["algo.lr=1"], 3.0)
    _job(tmp_path, "1", ["algo.lr=2"], None)  # fails below
    _job(tmp_path, "2", ["algo.lr=3"], None)  # still running

    def cfg(job: str) -> object:
        hydra = {
            "mode": RunMode.MULTIRUN,
            "sweep": {"dir": str(tmp_path)},
            "runtime": {"output_dir": str(tmp_path / job)},
        }
        return OmegaConf.create({"hydra": hydra})

    failed = JobReturn(
        status=JobStatus.FAILED, _return_value=ValueError("algo.num_minibatches=3 must divide 256")
    )
    SweepSummary().on_job_end(cfg("1"), failed)
    with (tmp_path / "sweep_summary.csv").open(newline="") as f:
        table = {r["job"]: r for r in csv.DictReader(f)}
    assert table["0"]["status"] == "ok" and table["2"]["status"] == "pending"
    assert table["1"]["status"] == "failed" and "must divide" in table["1"]["error"]
    SweepSummary().on_multirun_end(cfg("2"))  # the sweep is over: a job without a summary failed
    with (tmp_path / "sweep_summary.csv").open(newline="") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["ok", "failed", "failed"]
