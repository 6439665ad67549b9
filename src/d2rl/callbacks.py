"""Lightning callbacks of a run: metrics, periodic evaluation, checkpoints, progress bar.

They read the run's progress from the Loop (env steps, rounds, episodes), not from the Learner.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np

from d2rl import checkpoint
from d2rl.evaluation import evaluate
from d2rl.loops.local import LocalLoop
from d2rl.run_logger import RunLogger


def crossed(before: int, after: int, period: int) -> bool:
    return period > 0 and after // period > before // period


class MetricsCallback(L.Callback):
    """Logs finished episodes, each learner step's metrics every ``period`` env steps, throughput."""

    def __init__(self, run_logger: RunLogger, loop: LocalLoop, period_env_steps: int) -> None:
        self.logger, self.loop, self.period = run_logger, loop, period_env_steps
        self.last_logged = -1
        self.t_last, self.steps_last = time.perf_counter(), 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.t_last, self.steps_last = time.perf_counter(), self.loop.env_steps
        self.last_logged = self.loop.env_steps

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loop = self.loop
        step = loop.env_steps
        for ret, length in loop.tracker.drain():
            self.logger.log({"train/episode_return": ret, "train/episode_length": length}, step)
        if not crossed(self.last_logged, step, self.period) and loop.round < loop.total_rounds:
            return
        now = time.perf_counter()
        metrics = dict(outputs or {})
        metrics["perf/env_steps_per_s"] = (step - self.steps_last) / max(now - self.t_last, 1e-9)
        self.logger.log(metrics, step)
        self.t_last, self.steps_last, self.last_logged = now, step, step


class UpdateTimer(L.Callback):
    """Accumulates the wall time of the Learner's ``training_step`` into ``loop.timings["update"]``."""

    def __init__(self, loop: LocalLoop) -> None:
        self.loop, self.t0 = loop, 0.0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.t0 = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.loop.timings["update"] += time.perf_counter() - self.t0


class PeriodicCallback(L.Callback):
    """Runs ``fire`` after a learner step that crossed a multiple of ``period`` env steps
    (and, with ``at_end``, after the last one)."""

    def __init__(self, loop: LocalLoop, period: int, at_end: bool) -> None:
        self.loop, self.period, self.at_end = loop, period, at_end
        self._prev = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._prev = self.loop.env_steps

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loop = self.loop
        final = loop.round >= loop.total_rounds
        if (final and self.at_end) or (not final and crossed(self._prev, loop.env_steps, self.period)):
            self.fire(trainer, pl_module)
        self._prev = loop.env_steps

    def fire(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        raise NotImplementedError


class EvalCallback(PeriodicCallback):
    """Evaluates the policy every ``period`` env steps (``eval/return_mean``); the final
    evaluation is train()'s."""

    def __init__(
        self,
        run_logger: RunLogger,
        loop: LocalLoop,
        env_cfg: Any,
        period: int,
        episodes: int,
        seed: int,
        deterministic: bool,
    ) -> None:
        super().__init__(loop, period, at_end=False)
        self.logger, self.env_cfg = run_logger, env_cfg
        self.episodes, self.seed, self.deterministic = episodes, seed, deterministic
        self.last_return: float | None = None  # the latest periodic evaluation (for best.pt)

    def fire(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        returns = evaluate(self.loop.policy, self.env_cfg, self.episodes, self.seed, self.deterministic)
        self.last_return = float(returns.mean())
        self.logger.log(
            {"eval/return_mean": float(returns.mean()), "eval/return_std": float(returns.std())},
            self.loop.env_steps,
        )


class CheckpointCallback(PeriodicCallback):
    """Writes a checkpoint every ``period`` env steps and at the end of training, keeping the newest
    ``keep`` (0: all) plus, when pruning, ``best.pt``: the one written after the best periodic
    evaluation."""

    def __init__(
        self,
        loop: LocalLoop,
        ckpt_dir: Path,
        period: int,
        make_state: Callable[[L.Trainer], dict[str, Any]],
        keep: int = 0,
        evaluator: EvalCallback | None = None,
        separate_storage: bool = False,
    ) -> None:
        super().__init__(loop, period, at_end=True)
        self.ckpt_dir, self.make_state, self.keep, self.evaluator = ckpt_dir, make_state, keep, evaluator
        self.separate_storage = separate_storage  # the replay in its own file (replay.separate_file)
        self.last_path: Path | None = None
        self.best_return: float | None = None
        self._judged: float | None = None  # the evaluation best.pt was last decided on

    def fire(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)

    def save(self, trainer: L.Trainer) -> Path:
        latest = self.evaluator.last_return if self.evaluator is not None else None
        best = (
            self.keep > 0
            and latest is not None
            and latest is not self._judged
            and (self.best_return is None or latest > self.best_return)
        )
        if best:
            self.best_return = latest
        self._judged = latest
        state = self.make_state(trainer)
        state["loop"] = {**state.get("loop", {}), "best_return": self.best_return}
        self.last_path = checkpoint.save(
            self.ckpt_dir, state, self.loop.env_steps, self.keep, best, self.separate_storage
        )
        return self.last_path


class ProgressBar(L.Callback):
    """A tqdm bar over env steps with steps/s and the recent episode return.

    It follows the Loop every vector step (throttled), and a background thread refreshes it while
    a long update runs, so it moves within seconds even when one learner step takes minutes.
    """

    def __init__(self, loop: LocalLoop, total_env_steps: int, enabled: bool = True) -> None:
        self.loop, self.total, self.enabled = loop, total_env_steps, enabled
        self.bar: Any = None
        self._last = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        loop = self.loop
        self.bar = tqdm(
            total=max(self.total, loop.total_rounds * loop.env_steps_per_round),
            initial=loop.env_steps,
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
            file=sys.stderr,
            desc="train",
            mininterval=0.5 if sys.stderr.isatty() else 10.0,
        )
        loop.on_vector_step.append(self._tick)
        self._thread = threading.Thread(target=self._refresh, daemon=True)
        self._thread.start()

    def _tick(self, loop: LocalLoop) -> None:
        now = time.monotonic()
        if now - self._last > 0.5:
            self._last = now
            self._update()

    def _update(self) -> None:
        bar = self.bar
        if bar is None:
            return
        recent = self.loop.tracker.recent_mean()
        bar.set_postfix_str(f"return={recent:.1f}" if recent is not None else "return=n/a", refresh=False)
        bar.update(self.loop.env_steps - bar.n)

    def _refresh(self) -> None:
        while not self._stop.wait(2.0):
            if self.bar is not None:
                self._update()
                self.bar.refresh()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._update()

    def close(self) -> None:
        self._stop.set()
        if self.bar is not None:
            self._update()
            self.bar.close()
            self.bar = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.close()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.close()


def summarize_returns(returns: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(returns.mean()),
        "std": float(returns.std()),
        "min": float(returns.min()),
        "max": float(returns.max()),
    }
