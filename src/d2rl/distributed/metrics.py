"""Metrics of the Ray loops (TensorBoard, metrics.csv, progress bar).

``perf/learner_updates_per_s``, ``perf/env_steps_per_s`` (total, from MetricsCallback) and
``perf/actor_env_steps_per_s/<i>``, ``replay/size``, ``replay/sampled_per_inserted``,
``dist/weight_staleness`` (learner updates between the weights an actor acted with and the newest
ones, mean over the period), ``dist/weight_version``, ``dist/actor_restarts``; SEED adds
``inference/batch_fill`` (mean envs per batch / batch size) and ``inference/latency_ms``.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import numpy as np

from d2rl.callbacks import ProgressBar, crossed
from d2rl.run_logger import RunLogger


class DistributedMetrics(L.Callback):
    def __init__(self, run_logger: RunLogger, loop: Any, period_env_steps: int) -> None:
        self.logger, self.loop, self.period = run_logger, loop, period_env_steps
        self.last_logged = -1
        self.t_last = time.perf_counter()
        self.updates_last = 0
        self.actor_steps_last = np.zeros(loop.num_actors, dtype=np.int64)
        self.latest: dict[str, float] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.t_last = time.perf_counter()
        self.updates_last = self.loop.updates
        self.last_logged = self.loop.env_steps
        self.actor_steps_last = self.loop.actor_steps.copy()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loop = self.loop
        step = loop.env_steps
        if not crossed(self.last_logged, step, self.period) and loop.round < loop.total_rounds:
            return
        now = time.perf_counter()
        dt = max(now - self.t_last, 1e-9)
        m: dict[str, float] = {
            "perf/learner_updates_per_s": (loop.updates - self.updates_last) / dt,
            "dist/learner_updates": float(loop.updates),
            "dist/weight_version": float(loop.version),
            "dist/actor_restarts": float(loop.restarts),
        }
        steps = loop.actor_steps - self.actor_steps_last
        for i, s in enumerate(steps):
            m[f"perf/actor_env_steps_per_s/{i}"] = float(s) / dt
        if loop.staleness:
            m["dist/weight_staleness"] = float(np.mean(loop.staleness))
            loop.staleness.clear()
        if loop.roles is not None:
            st = loop.roles.stats()
            m["replay/size"] = st["size"]
            m["replay/sampled_per_inserted"] = st["sampled"] / max(st["inserted"], 1.0)
            for k in ("batch_fill", "latency_ms", "batches_per_s"):
                if k in st:
                    m[f"inference/{k}"] = st[k]
        self.logger.log(m, step)
        self.latest = m
        loop.latest_metrics = m
        self.t_last, self.updates_last, self.last_logged = now, loop.updates, step
        self.actor_steps_last = loop.actor_steps.copy()


class DistributedProgressBar(ProgressBar):
    """The local bar plus learner updates/s, replay size, weight staleness and actor restarts."""

    def _update(self) -> None:
        bar = self.bar
        if bar is None:
            return
        loop = self.loop
        recent = loop.tracker.recent_mean()
        m: dict[str, float] = getattr(loop, "latest_metrics", {})
        parts = [f"return={recent:.1f}" if recent is not None else "return=n/a", f"upd={loop.updates}"]
        if "perf/learner_updates_per_s" in m:
            parts.append(f"upd/s={m['perf/learner_updates_per_s']:.0f}")
        if "replay/size" in m:
            parts.append(f"replay={int(m['replay/size'])}")
        if "dist/weight_staleness" in m:
            parts.append(f"stale={m['dist/weight_staleness']:.0f}")
        if "inference/batch_fill" in m:
            parts.append(f"fill={m['inference/batch_fill']:.2f}")
        parts.append(f"restarts={loop.restarts}")
        bar.set_postfix_str(" ".join(parts), refresh=False)
        bar.update(loop.env_steps - bar.n)
