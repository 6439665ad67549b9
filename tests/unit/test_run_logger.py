"""metrics.csv: one row per env step at which anything was logged; episodes averaged and counted."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from d2rl.run_logger import RunLogger


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _log_run(logger: RunLogger) -> None:
    logger.log({"train/episode_return": 10.0, "train/episode_length": 100}, 64)
    logger.log({"train/episode_return": 20.0, "train/episode_length": 50}, 64)
    logger.log({"loss/policy": 0.5, "perf/env_steps_per_s": 1000.0}, 64)
    logger.log({"train/episode_return": 3.0, "train/episode_length": 30}, 128)
    logger.log({"train/episode_return": 5.0, "train/episode_length": 40}, 128)
    logger.log({"train/episode_return": 7.0, "train/episode_length": 50}, 128)
    logger.log({"loss/policy": 0.25}, 192)
    logger.log({"eval/return_mean": 8.0, "eval/return_std": float("nan")}, 192)


def test_one_row_per_env_step_with_episode_means_and_counts(tmp_path: Path) -> None:
    logger = RunLogger(tmp_path, tensorboard=False)
    _log_run(logger)
    logger.close()
    rows = _rows(tmp_path)
    assert [int(r["env_step"]) for r in rows] == [64, 128, 192]
    first, second, third = rows
    assert float(first["train/episode_return"]) == pytest.approx(15.0)
    assert float(first["train/episode_length"]) == pytest.approx(75.0)
    assert first["train/episodes"] == "2" and float(first["loss/policy"]) == 0.5
    assert float(second["train/episode_return"]) == pytest.approx(5.0) and second["train/episodes"] == "3"
    assert second["loss/policy"] == "" and second["eval/return_mean"] == ""
    assert third["train/episodes"] == "" and float(third["eval/return_mean"]) == 8.0
    assert "eval/return_std" not in third  # NaN is not logged
    # the file and the in-memory series agree
    assert logger.series("train/episode_return") == ([64.0, 128.0], [pytest.approx(15.0), pytest.approx(5.0)])


def test_file_is_current_after_every_call(tmp_path: Path) -> None:
    logger = RunLogger(tmp_path, tensorboard=False)
    logger.log({"train/episode_return": 1.0}, 10)
    assert _rows(tmp_path)[-1]["train/episode_return"] == "1.0"
    logger.log({"train/episode_return": 3.0}, 10)  # merged: the last line is replaced
    rows = _rows(tmp_path)
    assert (
        len(rows) == 1 and float(rows[0]["train/episode_return"]) == 2.0 and rows[0]["train/episodes"] == "2"
    )
    logger.log({"loss/value": 1.5}, 10)  # a new column rewrites the file, the row stays one
    logger.log({"loss/value": 0.5}, 20)
    rows = _rows(tmp_path)
    assert [r["env_step"] for r in rows] == ["10", "20"] and rows[0]["loss/value"] == "1.5"


def test_resume_drops_later_rows_and_keeps_merging(tmp_path: Path) -> None:
    logger = RunLogger(tmp_path, tensorboard=False)
    _log_run(logger)
    logger.close()
    resumed = RunLogger(tmp_path, tensorboard=False, resume_step=128)
    assert [r["env_step"] for r in _rows(tmp_path)] == ["64", "128"]
    resumed.log({"train/episode_return": 9.0}, 128)  # an episode ending at the resume step joins its row
    resumed.log({"loss/policy": 0.1}, 256)
    rows = _rows(tmp_path)
    assert [r["env_step"] for r in rows] == ["64", "128", "256"]
    assert float(rows[1]["train/episode_return"]) == pytest.approx(6.0) and rows[1]["train/episodes"] == "4"


def test_without_csv_the_series_still_merge(tmp_path: Path) -> None:
    logger = RunLogger(tmp_path, tensorboard=False, csv_file=False)
    _log_run(logger)
    assert not (tmp_path / "metrics.csv").exists()
    assert logger.series("train/episode_length") == (
        [64.0, 128.0],
        [pytest.approx(75.0), pytest.approx(40.0)],
    )
