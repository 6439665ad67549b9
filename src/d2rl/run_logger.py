"""Metrics to TensorBoard event files and a wide ``metrics.csv``, indexed by env steps."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any


class RunLogger:
    def __init__(
        self, run_dir: Path, tensorboard: bool = True, csv_file: bool = True, resume_step: int | None = None
    ) -> None:
        """``resume_step``: continuing a run; rows logged after that checkpoint are dropped."""
        self.run_dir = run_dir
        self.csv_path = run_dir / "metrics.csv" if csv_file else None
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = ["env_step", "wall_time"]
        self.t0 = time.time()
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=resume_step)
        if self.csv_path is not None and self.csv_path.exists():  # resuming: keep what was logged
            with self.csv_path.open(newline="") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or self.columns)
                self.rows = [r for r in reader if resume_step is None or float(r["env_step"]) <= resume_step]
            self._rewrite()

    def log(self, metrics: dict[str, float], env_step: int) -> None:
        metrics = {k: float(v) for k, v in metrics.items() if v is not None and not math.isnan(float(v))}
        if not metrics:
            return
        if self.writer is not None:
            for k, v in metrics.items():
                self.writer.add_scalar(k, v, env_step)
        if self.csv_path is None:
            return
        row = {"env_step": env_step, "wall_time": round(time.time() - self.t0, 3), **metrics}
        new_cols = [k for k in metrics if k not in self.columns]
        self.rows.append(row)
        if new_cols:
            self.columns += new_cols
            self._rewrite()
        else:
            with self.csv_path.open("a", newline="") as f:
                csv.DictWriter(f, self.columns).writerow(row)

    def _rewrite(self) -> None:
        assert self.csv_path is not None
        tmp = self.csv_path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, self.columns)
            w.writeheader()
            w.writerows(self.rows)
        tmp.replace(self.csv_path)

    def series(self, key: str) -> tuple[list[float], list[float]]:
        xs, ys = [], []
        for r in self.rows:
            v = r.get(key)
            if v not in (None, ""):
                xs.append(float(r["env_step"]))
                ys.append(float(v))  # type: ignore[arg-type]
        return xs, ys

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
