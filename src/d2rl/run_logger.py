"""Metrics to TensorBoard event files and a wide ``metrics.csv``: one row per env step.

``metrics.csv`` has one row per ``env_step`` at which anything was logged; its columns are
``env_step``, ``wall_time`` (seconds since the logger started) and one per metric name, empty
where a metric was not logged at that step. Everything logged at the same env step goes into one
row. A metric logged several times at one env step (the episodes that ended in the same logging
interval) holds the mean of those values, and for episode statistics the column
``train/episodes`` says how many episodes that mean is over. TensorBoard gets every value as
logged (one point per episode).

With ``logger.wandb=true`` every value also goes to Weights & Biases (x axis ``env_step``), with the
run's config, the eval videos and the learning curve; ``WANDB_MODE=offline`` keeps the run in
``<run dir>/wandb/`` (``wandb sync`` uploads it later).
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

# A metric whose values are counted: its row holds their mean, this column their number.
COUNTS = {"train/episode_return": "train/episodes"}


def start_wandb(run_dir: Path, config: dict[str, Any], project: str, resume: bool = False) -> Any:
    """A W&B run kept in ``run_dir/wandb`` (its id is the run folder's, so a resumed run continues it)."""
    try:
        import wandb
    except ImportError as e:
        from d2rl.errors import D2RLError

        raise D2RLError("logger.wandb=true needs the wandb package: pip install 'd2rl[wandb]'") from e
    run_id = "".join(c if c.isalnum() else "-" for c in str(run_dir.resolve()))[-64:].strip("-")
    run = wandb.init(
        project=project,
        dir=str(run_dir),
        config=config,
        name=run_dir.name,
        id=run_id,
        resume="allow" if resume else None,
        settings=wandb.Settings(console="off", quiet=True),
    )
    run.define_metric("env_step")
    run.define_metric("*", step_metric="env_step")
    return run


class RunLogger:
    def __init__(
        self,
        run_dir: Path,
        tensorboard: bool = True,
        csv_file: bool = True,
        resume_step: int | None = None,
        wandb_run: Any = None,
    ) -> None:
        """``resume_step``: continuing a run; rows logged after that checkpoint are dropped.
        ``wandb_run``: a W&B run (``start_wandb``) that gets every value too."""
        self.run_dir = run_dir
        self.wandb = wandb_run
        self.csv_path = run_dir / "metrics.csv" if csv_file else None
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = ["env_step", "wall_time"]
        self.t0 = time.time()
        self.writer = None
        self._counts: dict[str, int] = {}  # key -> values averaged into the last row
        self._last_offset = 0  # where the last row starts in metrics.csv
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=resume_step)
        if self.csv_path is not None and self.csv_path.exists():  # resuming: keep what was logged
            with self.csv_path.open(newline="") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or self.columns)
                self.rows = [r for r in reader if resume_step is None or float(r["env_step"]) <= resume_step]
            if self.rows:
                self._counts = self._loaded_counts(self.rows[-1])
            self._rewrite()

    def log(self, metrics: dict[str, float], env_step: int) -> None:
        """Record ``metrics`` at ``env_step``, merging into that step's row if it is the last one."""
        metrics = {k: float(v) for k, v in metrics.items() if v is not None and not math.isnan(float(v))}
        if not metrics:
            return
        if self.writer is not None:
            for k, v in metrics.items():
                self.writer.add_scalar(k, v, env_step)
        if self.wandb is not None:
            self.wandb.log({**metrics, "env_step": env_step})
        merge = bool(self.rows) and float(self.rows[-1]["env_step"]) == env_step
        if not merge:
            self.rows.append({"env_step": env_step})
            self._counts = {}
        row = self.rows[-1]
        row["wall_time"] = round(time.time() - self.t0, 3)
        for k, v in metrics.items():
            n = self._counts.get(k, 0)
            old = row.get(k)
            row[k] = v if n == 0 or old in (None, "") else float(old) + (v - float(old)) / (n + 1)
            self._counts[k] = n + 1
            if k in COUNTS:
                row[COUNTS[k]] = n + 1
        if self.csv_path is None:
            return
        new_cols = [c for c in row if c not in self.columns]
        if new_cols:
            self.columns += new_cols
            self._rewrite()
        else:
            self._write_last(truncate=merge)

    def _loaded_counts(self, row: dict[str, Any]) -> dict[str, int]:
        """Counts of a row read back from metrics.csv (resume), so later values merge into it."""
        counts = {k: 1 for k, v in row.items() if k not in ("env_step", "wall_time") and v not in (None, "")}
        for key, count_col in COUNTS.items():
            if key in counts and row.get(count_col) not in (None, ""):
                counts[key] = int(float(row[count_col]))
        return counts

    def _write_last(self, truncate: bool) -> None:
        """Append the last row, or (``truncate``) replace the last line with it."""
        assert self.csv_path is not None
        with self.csv_path.open("r+" if truncate else "a", newline="") as f:
            if truncate:
                f.seek(self._last_offset)
                f.truncate()
            else:
                self._last_offset = f.tell()
            csv.DictWriter(f, self.columns).writerow(self.rows[-1])

    def _rewrite(self) -> None:
        assert self.csv_path is not None
        tmp = self.csv_path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, self.columns)
            w.writeheader()
            w.writerows(self.rows[:-1])
            self._last_offset = f.tell()
            w.writerows(self.rows[-1:])
        tmp.replace(self.csv_path)

    def series(self, key: str) -> tuple[list[float], list[float]]:
        """``(env_steps, values)`` of the rows where ``key`` was logged."""
        xs, ys = [], []
        for r in self.rows:
            v = r.get(key)
            if v not in (None, ""):
                xs.append(float(r["env_step"]))
                ys.append(float(v))  # type: ignore[arg-type]
        return xs, ys

    def log_video(self, tag: str, path: Path, frames: list[Any], fps: float, env_step: int) -> None:
        """An eval video: ``frames`` (``[H, W, 3]`` uint8) as an animated image in TensorBoard,
        the mp4 at ``path`` to W&B."""
        if self.writer is not None and frames:
            from d2rl.video import add_tensorboard_video

            add_tensorboard_video(self.writer, tag, frames, fps, env_step)
            self.writer.flush()
        if self.wandb is not None:
            import wandb

            self.wandb.log({tag: wandb.Video(str(path), format="mp4"), "env_step": env_step})

    def log_image(self, tag: str, path: Path) -> None:
        """A picture (the learning curve) to W&B."""
        if self.wandb is not None:
            import wandb

            self.wandb.log({tag: wandb.Image(str(path))})

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None
