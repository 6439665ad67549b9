"""Run summary (summary.json) and learning-curve plot."""

from __future__ import annotations

import json
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from d2rl.run_logger import RunLogger

PACKAGES = ("d2rl", "torch", "lightning", "gymnasium", "hydra-core", "omegaconf", "numpy")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for p in PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def git_commit() -> str | None:
    """The commit of the d2rl source this run used (None outside a git checkout)."""
    src = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")


def write_summary(run_dir: Path, data: dict[str, Any]) -> Path:
    path = run_dir / "summary.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def plot_learning_curve(run_logger: RunLogger, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    xs, ys = run_logger.series("train/episode_return")
    if xs:
        ax.plot(xs, ys, ".", ms=2, alpha=0.25, color="tab:blue", label="train episode")
        k = max(1, min(20, len(ys) // 10))
        if len(ys) >= k:
            import numpy as np

            smooth = np.convolve(ys, np.ones(k) / k, mode="valid")
            ax.plot(xs[k - 1 :], smooth, color="tab:blue", label=f"train (mean of {k})")
    ex, ey = run_logger.series("eval/return_mean")
    if ex:
        ax.plot(ex, ey, "o-", color="tab:orange", label="eval (mean)")
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
