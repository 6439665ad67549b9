"""What an off-policy learner's ``training_step`` receives: the gradient steps owed for a round."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class ReplayBatches:
    """``count`` batches of ``batch_size`` transitions, sampled lazily from ``storage``.

    Prioritized storage is sampled one batch at a time, so priorities written back with
    ``update_priorities`` shape the next batch; uniform storage draws all batches in one call
    (the same distribution, a fraction of the overhead).
    """

    storage: Any
    count: int
    batch_size: int
    env_steps: int
    round: int
    total_rounds: int

    @property
    def prioritized(self) -> bool:
        return hasattr(self.storage, "update_priorities")

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        B = self.batch_size
        if self.count == 0:
            return
        if self.prioritized:
            for _ in range(self.count):
                yield self.storage.sample(B)
            return
        big = self.storage.sample(self.count * B)
        for i in range(self.count):
            yield {k: v[i * B : (i + 1) * B] for k, v in big.items()}

    def update_priorities(self, batch: dict[str, torch.Tensor], priorities: torch.Tensor) -> None:
        """New priorities ``[B]`` (e.g. ``|TD error|``) for the transitions of ``batch``; no-op for uniform replay."""
        if self.prioritized:
            self.storage.update_priorities(batch["indices"], priorities.detach())
