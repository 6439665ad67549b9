"""NaN/inf guard: a non-finite loss, metric, parameter or observation stops training with a message
naming what and when (``trainer.nan_policy=stop``, the default), or the update is undone
(``trainer.nan_policy=skip``: networks and optimizers return to their state before the update).

The guard runs before the checkpoint callback, so a diverged state is never written over the last
good checkpoint.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

import lightning as L
import numpy as np
import torch

from d2rl.errors import D2RLError

log = logging.getLogger(__name__)

POLICIES = ("stop", "skip")
MAX_CONSECUTIVE_SKIPS = 100


class NonFiniteError(D2RLError):
    """Training produced NaN or inf; the CLI exits with ``exit_code`` (``cli.EXIT_DIVERGED``)."""

    exit_code = 3


def first_non_finite_metric(metrics: Any) -> tuple[str, float] | None:
    if not isinstance(metrics, dict):
        return None
    for name, v in metrics.items():
        try:
            x = float(v)
        except (TypeError, ValueError, RuntimeError):
            continue
        if not math.isfinite(x):
            return str(name), x
    return None


def first_non_finite_parameter(module: torch.nn.Module) -> str | None:
    """Name of a parameter holding NaN/inf (one float64 sum per tensor; the common case is one check)."""
    params = [(n, p) for n, p in module.named_parameters() if p.is_floating_point()]
    if not params:
        return None
    total = torch.stack([p.detach().sum(dtype=torch.float64) for _, p in params]).sum()
    if bool(torch.isfinite(total)):
        return None
    for name, p in params:
        if not bool(torch.isfinite(p.detach()).all()):
            return name
    return None  # finite values whose sum overflowed float64


def check_observation(obs: np.ndarray, env_steps: int) -> None:
    """Raise if a float observation holds NaN/inf (observations always stop: no update to undo)."""
    if obs.dtype.kind == "f" and not np.isfinite(obs).all():
        bad = np.argwhere(~np.isfinite(obs))[0]
        raise NonFiniteError(
            f"observation is non-finite at env step {env_steps} (env {int(bad[0])}, index "
            f"{tuple(int(i) for i in bad[1:])}); the env produced NaN/inf; check it or its wrappers"
        )


class NonFiniteGuard(L.Callback):
    """Checks each learner step's metrics and parameters; ``policy`` is ``stop`` or ``skip``."""

    def __init__(self, loop: Any, policy: str) -> None:
        if policy not in POLICIES:
            raise D2RLError(f"trainer.nan_policy must be one of {', '.join(POLICIES)}, got '{policy}'")
        self.loop, self.policy = loop, policy
        self._snapshot: tuple[dict[str, Any], list[dict[str, Any]]] | None = None
        self.skipped = 0
        self._consecutive = 0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.policy == "skip":
            weights = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
            opts = [copy.deepcopy(o.state_dict()) for o in trainer.optimizers]
            self._snapshot = (weights, opts)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        bad_metric = first_non_finite_metric(outputs)
        bad_param = None if bad_metric else first_non_finite_parameter(pl_module)
        if bad_metric is None and bad_param is None:
            self._consecutive = 0
            return
        loop = self.loop
        what = (
            f"{bad_metric[0]} is {bad_metric[1]}" if bad_metric else f"parameter '{bad_param}' is non-finite"
        )
        where = f"at env step {loop.env_steps} (learner step {loop.round})"
        if self.policy == "skip" and self._snapshot is not None and self._consecutive < MAX_CONSECUTIVE_SKIPS:
            weights, opts = self._snapshot
            pl_module.load_state_dict(weights)
            for o, s in zip(trainer.optimizers, opts, strict=True):
                o.load_state_dict(s)
            self.skipped += 1
            self._consecutive += 1
            log.warning("%s %s: update skipped (trainer.nan_policy=skip)", what, where)
            if isinstance(outputs, dict):
                outputs.clear()  # nothing of the undone update is logged
            return
        if self.policy == "skip":
            what += f" after {MAX_CONSECUTIVE_SKIPS} skipped updates in a row"
        raise NonFiniteError(
            f"{what} {where}; training stopped, the last good checkpoint is kept. Lower algo.lr, check the "
            "env's rewards and observations, or set trainer.nan_policy=skip to skip such updates"
        )
