"""Fault injection shared by tests (importable as ``faults``: tests/conftest.py puts tests/ on the path)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch


class PoisonParameters(L.Callback):
    """Fills the learner's first parameter with NaN before learner step ``at`` (once): the next
    update's loss or the parameter check then trips the NaN guard."""

    def __init__(self, at: int) -> None:
        self.at, self.done = at, False

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if batch_idx == self.at and not self.done:
            self.done = True
            with torch.no_grad():
                next(pl_module.parameters()).fill_(float("nan"))
