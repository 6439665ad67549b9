"""Lightning callbacks of a run: metrics, periodic evaluation, checkpoints, progress bar."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np

from d2rl import checkpoint
from d2rl.agent import Agent
from d2rl.evaluation import evaluate
from d2rl.run_logger import RunLogger

log = logging.getLogger(__name__)


def crossed(before: int, after: int, period: int) -> bool:
    return period > 0 and after // period > before // period


class MetricsCallback(L.Callback):
    """Logs each iteration's update metrics, finished episodes and throughput."""

    def __init__(self, run_logger: RunLogger, period_env_steps: int) -> None:
        self.logger, self.period = run_logger, period_env_steps
        self.last_logged = -1
        self.t_last, self.steps_last = time.perf_counter(), 0

    def on_train_start(self, trainer: L.Trainer, agent: Agent) -> None:  # type: ignore[override]
        self.t_last, self.steps_last = time.perf_counter(), agent.env_steps
        self.last_logged = agent.env_steps

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        agent: Agent,
        outputs: Any,
        batch: Any,  # type: ignore[override]
        batch_idx: int,
    ) -> None:
        assert agent.tracker is not None
        step = agent.env_steps
        for ret, length in agent.tracker.drain():
            self.logger.log({"train/episode_return": ret, "train/episode_length": length}, step)
        if not crossed(self.last_logged, step, self.period) and agent.iteration < agent.total_iterations:
            return
        now = time.perf_counter()
        metrics = dict(outputs or {})
        metrics["perf/env_steps_per_s"] = (step - self.steps_last) / max(now - self.t_last, 1e-9)
        self.logger.log(metrics, step)
        self.t_last, self.steps_last, self.last_logged = now, step, step


class PeriodicCallback(L.Callback):
    """Runs ``fire`` after an iteration that crossed a multiple of ``period`` env steps
    (and, with ``at_end``, after the last iteration)."""

    def __init__(self, period: int, at_end: bool) -> None:
        self.period, self.at_end = period, at_end
        self._prev = 0

    def on_train_batch_start(self, trainer: L.Trainer, agent: Agent, batch: Any, batch_idx: int) -> None:
        self._prev = agent.env_steps

    def on_train_batch_end(
        self, trainer: L.Trainer, agent: Agent, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        final = agent.iteration >= agent.total_iterations
        if (final and self.at_end) or (not final and crossed(self._prev, agent.env_steps, self.period)):
            self.fire(trainer, agent)

    def fire(self, trainer: L.Trainer, agent: Agent) -> None:
        raise NotImplementedError


class EvalCallback(PeriodicCallback):
    """Evaluates the policy every ``period`` env steps (``eval/return_mean``); the final
    evaluation is train()'s."""

    def __init__(
        self, run_logger: RunLogger, env_cfg: Any, period: int, episodes: int, seed: int, deterministic: bool
    ) -> None:
        super().__init__(period, at_end=False)
        self.logger, self.env_cfg = run_logger, env_cfg
        self.episodes, self.seed, self.deterministic = episodes, seed, deterministic

    def fire(self, trainer: L.Trainer, agent: Agent) -> None:
        returns = evaluate(agent, self.env_cfg, self.episodes, self.seed, self.deterministic)
        self.logger.log(
            {"eval/return_mean": float(returns.mean()), "eval/return_std": float(returns.std())},
            agent.env_steps,
        )


class CheckpointCallback(PeriodicCallback):
    """Writes a checkpoint every ``period`` env steps and at the end of training."""

    def __init__(
        self, ckpt_dir: Path, period: int, make_state: Callable[[Agent, L.Trainer], dict[str, Any]]
    ) -> None:
        super().__init__(period, at_end=True)
        self.ckpt_dir, self.make_state = ckpt_dir, make_state
        self.last_path: Path | None = None

    def fire(self, trainer: L.Trainer, agent: Agent) -> None:
        self.last_path = checkpoint.save(self.ckpt_dir, self.make_state(agent, trainer), agent.env_steps)


class ProgressBar(L.Callback):
    """A tqdm bar over env steps with steps/s and the recent episode return."""

    def __init__(self, total_env_steps: int, enabled: bool = True) -> None:
        self.total, self.enabled = total_env_steps, enabled
        self.bar: Any = None

    def on_train_start(self, trainer: L.Trainer, agent: Agent) -> None:  # type: ignore[override]
        if not self.enabled:
            return
        from tqdm import tqdm

        self.bar = tqdm(
            total=max(self.total, agent.total_iterations * agent.env_steps_per_iteration()),
            initial=agent.env_steps,
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
            file=sys.stderr,
            desc="train",
            mininterval=0.5 if sys.stderr.isatty() else 10.0,
        )

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        agent: Agent,
        outputs: Any,
        batch: Any,  # type: ignore[override]
        batch_idx: int,
    ) -> None:
        if self.bar is None:
            return
        assert agent.tracker is not None
        recent = agent.tracker.recent_mean()
        self.bar.set_postfix_str(
            f"return={recent:.1f}" if recent is not None else "return=n/a", refresh=False
        )
        self.bar.update(agent.env_steps - self.bar.n)

    def on_train_end(self, trainer: L.Trainer, agent: Agent) -> None:  # type: ignore[override]
        if self.bar is not None:
            self.bar.close()


def summarize_returns(returns: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(returns.mean()),
        "std": float(returns.std()),
        "min": float(returns.min()),
        "max": float(returns.max()),
    }
