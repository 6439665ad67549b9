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
