"""Sweep-level summary of a multirun (``d2rl -m ...``), written when the sweep ends.

``SweepSummary`` is a Hydra callback (``hydra.callbacks.sweep_summary`` in conf/config.yaml).
It reads what each job left in its folder (``.hydra/overrides.yaml``, ``summary.json``,
``metrics.csv``), so it works the same for the basic launcher, the Ray launcher (on one
machine or a shared filesystem) and the Optuna sweeper, and writes into the sweep folder:

- ``sweep_summary.csv``: one row per job: job number, each swept key (one whose value differs
  between jobs) in its own column, final eval return mean/std, env steps, wall time, status
  (``failed``: the job left no summary.json), all its overrides, its folder;
- ``sweep_curves.png``: the jobs' learning curves (smoothed train episode return against env steps).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

MAX_LEGEND = 24  # jobs named in the plot's legend (the CSV has them all)
RESULT_COLUMNS = ["return_mean", "return_std", "env_steps", "wall_time_s", "status", "error"]
FAILED_FILE = "failed.txt"  # written into a job's folder when the job raised


def collect_jobs(sweep_dir: Path, final: bool = True) -> list[dict[str, Any]]:
    """One dict per job folder under ``sweep_dir`` (a folder holding ``.hydra/overrides.yaml``).

    Status: ``ok`` (it wrote summary.json), ``failed`` (it wrote ``failed.txt``, or the sweep is
    over and it left no summary), ``pending`` (still running, in a summary written mid-sweep).
    """
    jobs = []
    for overrides_file in sweep_dir.glob("**/.hydra/overrides.yaml"):
        job_dir = overrides_file.parent.parent
        overrides = [str(o) for o in OmegaConf.load(overrides_file)]
        rel = job_dir.relative_to(sweep_dir).as_posix()
        job: dict[str, Any] = {"job": rel, "dir": str(job_dir), "overrides": " ".join(overrides)}
        for o in overrides:
            key, sep, value = o.partition("=")
            if sep:
                job[key.lstrip("+~")] = value
        summary_file = job_dir / "summary.json"
        if summary_file.exists():
            s = json.loads(summary_file.read_text())
            final_eval = s.get("final_eval", {})
            job.update(
                return_mean=final_eval.get("mean"),
                return_std=final_eval.get("std"),
                env_steps=s.get("env_steps"),
                wall_time_s=s.get("wall_time_s"),
                status="ok",
            )
        elif (job_dir / FAILED_FILE).exists():
            job.update(status="failed", error=(job_dir / FAILED_FILE).read_text().strip()[:300])
        else:
            job.update(status="failed" if final else "pending")
        jobs.append(job)
    jobs.sort(key=lambda j: (len(j["job"]), j["job"]))  # 0, 1, ..., 10 (numeric subdirs)
    return jobs


def swept_keys(jobs: list[dict[str, Any]]) -> list[str]:
    """Override keys whose value differs between jobs (all keys when none differ)."""
    keys = {k for j in jobs for k in j} - {"job", "dir", "overrides", *RESULT_COLUMNS}
    varying = {k for k in keys if len({j.get(k) for j in jobs}) > 1}
    return sorted(varying or keys)


def _short(value: Any) -> str:
    try:
        return f"{float(value):.3g}"
    except (TypeError, ValueError):
        return str(value)


def write_csv(jobs: list[dict[str, Any]], path: Path) -> Path:
    swept = swept_keys(jobs)  # a column each; fixed overrides stay in `overrides`
    columns = ["job", *swept, *RESULT_COLUMNS, "overrides", "dir"]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # parallel jobs may write at once
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        for j in jobs:
            w.writerow({c: j.get(c, "") for c in columns})
    tmp.replace(path)
    return path


def _curve(metrics_csv: Path, key: str = "train/episode_return") -> tuple[list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    if not metrics_csv.exists():
        return xs, ys
    with metrics_csv.open(newline="") as f:
        for row in csv.DictReader(f):
            if row.get(key):
                xs.append(float(row["env_step"]))
                ys.append(float(row[key]))
    return xs, ys


def plot_curves(jobs: list[dict[str, Any]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = swept_keys(jobs)
    shown = jobs[:MAX_LEGEND]
    fig, ax = plt.subplots(figsize=(8, 4.5 + 0.16 * len(shown)), dpi=110)
    for j in jobs:
        xs, ys = _curve(Path(j["dir"]) / "metrics.csv")
        swept = " ".join(f"{k.rsplit('.', 1)[-1]}={_short(j[k])}" for k in keys if k in j)
        final = f" -> {j['return_mean']:.1f}" if j.get("return_mean") is not None else ""
        label = f"{j['job']}: {swept or '(defaults)'}{final}" if j in shown else None
        if len(ys) >= 2:
            k = max(1, min(10, len(ys) // 5))
            smooth = np.convolve(ys, np.ones(k) / k, mode="valid")
            ax.plot(xs[k - 1 :], smooth, label=label)
        elif ys:
            ax.plot(xs, ys, "o", label=label)
    ax.set_xlabel("env steps")
    ax.set_ylabel("train episode return (smoothed)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.14), fontsize=7, frameon=False)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path


def summarize_sweep(sweep_dir: Path, quiet: bool = False) -> list[dict[str, Any]]:
    """Write ``sweep_summary.csv`` and ``sweep_curves.png`` into ``sweep_dir``; returns the rows."""
    jobs = collect_jobs(sweep_dir, final=not quiet)
    if quiet and jobs:
        write_csv(jobs, sweep_dir / "sweep_summary.csv")
        plot_curves(jobs, sweep_dir / "sweep_curves.png", f"sweep {sweep_dir}")
        return jobs
    if not jobs:
        log.warning("no job folders found under %s; no sweep summary written", sweep_dir)
        return jobs
    write_csv(jobs, sweep_dir / "sweep_summary.csv")
    plot_curves(jobs, sweep_dir / "sweep_curves.png", f"sweep {sweep_dir}")
    done = [j for j in jobs if j["status"] == "ok"]
    if len(done) < len(jobs):
        log.warning(
            "%d of %d jobs failed; see the status and error columns", len(jobs) - len(done), len(jobs)
        )
    if done:
        best = max(done, key=lambda j: j["return_mean"])
        log.info(
            "sweep of %d jobs (%d ok); best final return %.2f: %s",
            len(jobs),
            len(done),
            best["return_mean"],
            best["overrides"],
        )
    log.info("sweep summary: %s", sweep_dir / "sweep_summary.csv")
    return jobs


class SweepSummary(Callback):
    """Hydra callback: summarise the sweep folder after each job (so a sweep that stops early, or
    one still running, has a current summary) and once more when the multirun ends."""

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus
        from hydra.types import RunMode

        if config.hydra.mode != RunMode.MULTIRUN:
            return
        if job_return.status == JobStatus.FAILED:
            error = job_return._return_value  # the exception (return_value would re-raise it)
            job_dir = Path(str(config.hydra.runtime.output_dir))
            (job_dir / FAILED_FILE).write_text(f"{type(error).__name__}: {error}\n")
        summarize_sweep(Path(str(config.hydra.sweep.dir)), quiet=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        summarize_sweep(Path(str(config.hydra.sweep.dir)))
