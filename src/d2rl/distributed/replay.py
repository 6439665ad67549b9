"""Replay shards (Ray actors) and the learner's view of them.

A shard holds one ring buffer (``d2rl.buffers`` ``ReplayBuffer`` or ``PrioritizedReplayBuffer``)
per actor slot it serves: an actor writes whole vector steps of its envs, as the local Loop does,
so n-step returns and frame stacks work unchanged. Sampling draws a slot in proportion to its
total priority (uniform: its size), then transitions within it; importance weights use the
shard-wide total, so they are those of one prioritized buffer over all the shard's slots.
A flat index is ``slot_position * stride + buffer index``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from d2rl.buffers.prioritized import PrioritizedReplayBuffer
from d2rl.buffers.replay import ReplayBuffer


class ReplayShard:
    """Actor slots -> buffers made by ``make_buffer(capacity)``; states of earlier runs load on start."""

    def __init__(
        self,
        make_buffer: Callable[[int], ReplayBuffer],
        capacity_per_slot: int,
        seed: int,
        saved: dict[Any, dict[str, Any]] | None = None,
        sequences: Any = None,
    ) -> None:
        import torch as _torch

        _torch.set_num_threads(1)
        self.make_buffer, self.capacity = make_buffer, capacity_per_slot
        # R2D2: one SequenceReplay per shard (``sequences`` makes it; actors build the sequences)
        self.sequences = sequences() if sequences is not None else None
        self.slots: dict[int, ReplayBuffer] = {}
        self.order: list[int] = []  # slot ranks by position (flat index = position * stride + id)
        self.rng = np.random.default_rng(seed)
        self.inserted = 0
        self.sampled = 0
        self.beta = None
        for rank, state in sorted((saved or {}).items(), key=lambda kv: str(kv[0])):
            if str(rank).startswith("sequences"):
                self.sequences.load_state_dict(state)
                continue
            buf = self._slot(rank, int(state["capacity"]))
            buf.load_state_dict(state["buffer"])

    def _slot(self, rank: int, capacity: int | None = None) -> ReplayBuffer:
        buf = self.slots.get(rank)
        if buf is None:
            buf = self.make_buffer(capacity or self.capacity)
            buf.capacity_setting = capacity or self.capacity  # type: ignore[attr-defined]
            self.slots[rank] = buf
            self.order.append(rank)
        return buf

    stride = 1 << 32  # flat index = slot position * stride + the slot buffer's own index

    # -- writing (actors) ---------------------------------------------------------------------
    def add(
        self, rank: int, chunk: dict[str, np.ndarray], priorities: np.ndarray | None, fresh: bool
    ) -> int:
        """``chunk``: ``[T, n, ...]`` arrays of one actor's vector steps; ``priorities [T, n]`` or None
        (new transitions then get the largest priority seen). ``fresh``: the actor (re)started its
        envs, so its running episodes are cut first."""
        buf = self._slot(rank)
        if fresh and buf.size > 0:
            buf.cut_episodes()
        T = chunk["obs"].shape[0]
        life = chunk.get("frames_continue")
        for t in range(T):
            ids = buf.add(
                chunk["obs"][t],
                chunk["action"][t],
                chunk["reward"][t],
                chunk["next_obs"][t],
                chunk["terminated"][t],
                chunk["truncated"][t],
                frames_continue=None if life is None else life[t],
            )
            if priorities is not None and isinstance(buf, PrioritizedReplayBuffer):
                buf.update_priorities(ids, priorities[t])
        n = T * chunk["obs"].shape[1]
        self.inserted += n
        return n

    def add_sequences(self, sequences: list[dict[str, Any]], priorities: np.ndarray | None) -> int:
        """R2D2: sequences from an actor's ``SequenceBuilder`` (priorities: mixed, or None = max)."""
        self.sequences.add(sequences, priorities)
        self.inserted += len(sequences)
        return len(sequences)

    # -- reading (learner) --------------------------------------------------------------------
    def _weights_of(self, buf: ReplayBuffer) -> float:
        if isinstance(buf, PrioritizedReplayBuffer):
            return buf.tree.total
        return float(len(buf))

    def sample(self, batch_size: int, beta: float) -> dict[str, np.ndarray] | None:
        """A batch over all slots (None while the shard holds fewer than ``batch_size``)."""
        if self.size() < batch_size:
            return None
        if self.sequences is not None:
            out = self.sequences.sample(batch_size)
            self.sampled += batch_size
            return {k: (tuple(x.numpy() for x in v) if isinstance(v, tuple) else v.numpy()) for k, v in out.items()}
        ranks = list(self.order)
        mass = np.array([self._weights_of(self.slots[r]) for r in ranks])
        counts = self.rng.multinomial(batch_size, mass / mass.sum())
        stride, parts, probs = self.stride, [], []
        for rank, k in zip(ranks, counts, strict=True):
            if k == 0:
                continue
            buf = self.slots[rank]
            rows, envs = buf.sample_ids(int(k))
            part = buf.gather(rows, envs)
            ids = rows * buf.num_envs + envs
            if isinstance(buf, PrioritizedReplayBuffer):
                probs.append(buf.tree.get(ids) / mass.sum())
            part["indices"] = torch.from_numpy(self.order.index(rank) * stride + ids)
            parts.append(part)
        batch = {k: torch.cat([p[k] for p in parts]).numpy() for k in parts[0]}
        if probs:
            p = np.maximum(np.concatenate(probs), 1e-12)
            w = (self.size() * p) ** -beta
            batch["weights"] = (w / w.max()).astype(np.float32)
        self.sampled += batch_size
        return batch

    def update_priorities(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        if self.sequences is not None:
            self.sequences.update_priorities(indices, priorities)
            return
        stride = self.stride
        pos, ids = np.divmod(np.asarray(indices, dtype=np.int64), stride)
        for p in np.unique(pos):
            buf = self.slots[self.order[int(p)]]
            if isinstance(buf, PrioritizedReplayBuffer):
                mine = pos == p
                buf.update_priorities(ids[mine], np.asarray(priorities)[mine])

    def size(self) -> int:
        """Stored transitions (R2D2: sequences)."""
        if self.sequences is not None:
            return len(self.sequences)
        return sum(len(b) for b in self.slots.values())

    def stats(self) -> dict[str, float]:
        return {"size": float(self.size()), "inserted": float(self.inserted), "sampled": float(self.sampled)}

    def state_dict(self) -> dict[Any, dict[str, Any]]:
        """The buffers' own numpy arrays, not copies (``state_arrays``): Ray serializes a return
        value before this actor runs its next call, and numpy arrays go into the object store
        without the intermediate copies a tensor's pickling makes. The driver turns them into
        tensors (``transfer.as_tensors``) for the checkpoint."""
        if self.sequences is not None:
            return {"sequences": self.sequences.state_arrays()}
        return {
            rank: {"capacity": buf.capacity_setting, "buffer": buf.state_arrays()}  # type: ignore[attr-defined]
            for rank, buf in self.slots.items()
        }

    def ping(self) -> bool:
        return True


class ShardsView:
    """The shards' total size, for learners that log ``len(experience.storage)``."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


class ShardBatches:
    """A Trainer step's ``count`` batches from the shards, as ``ReplayBatches`` gives them locally:
    iterate for batches, ``update_priorities`` sends new priorities back (fire and forget).
    Two sample requests stay in flight, so a shard samples while the learner updates."""

    def __init__(
        self,
        shards: list[Any],
        shard_sizes: list[float],
        count: int,
        batch_size: int,
        beta: float,
        env_steps: int,
        round: int,
        total_rounds: int,
        rng: np.random.Generator,
        timings: dict[str, float],
        between: Callable[[], None] | None = None,
    ) -> None:
        self.between = between  # called after each batch: the driver takes finished actor chunks
        self.shards, self.count, self.batch_size, self.beta = shards, count, batch_size, beta
        self.env_steps, self.round, self.total_rounds = env_steps, round, total_rounds
        sizes = np.asarray(shard_sizes, dtype=np.float64)
        self.p = sizes / sizes.sum() if sizes.sum() > 0 else np.full(len(shards), 1.0 / len(shards))
        self.rng, self.timings = rng, timings
        self.replay_size = float(sum(shard_sizes))
        self._shard_of: dict[int, int] = {}
        self.done = 0

    @property
    def storage(self) -> ShardsView:
        """What a learner may ask of its storage here: its size (as of the last shard stats)."""
        return ShardsView(int(self.replay_size))

    @property
    def prioritized(self) -> bool:
        return True

    def __len__(self) -> int:
        return self.count

    def _request(self) -> tuple[int, Any]:
        s = int(self.rng.choice(len(self.shards), p=self.p))
        return s, self.shards[s].sample.remote(self.batch_size, self.beta)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        import ray

        inflight = [self._request() for _ in range(min(2, self.count))]
        issued = len(inflight)
        while inflight:
            s, ref = inflight.pop(0)
            t0 = time.perf_counter()
            out = ray.get(ref)
            self.timings["sample_wait"] = self.timings.get("sample_wait", 0.0) + time.perf_counter() - t0
            if issued < self.count:
                inflight.append(self._request())
                issued += 1
            if out is None:
                continue
            batch = {
                k: tuple(torch.from_numpy(np.array(x)) for x in v) if isinstance(v, tuple) else torch.from_numpy(np.array(v))
                for k, v in out.items()
            }
            self._shard_of[id(batch["indices"])] = s
            self.done += 1
            yield batch
            if self.between is not None:
                self.between()

    def update_priorities(self, batch: dict[str, torch.Tensor], priorities: torch.Tensor) -> None:
        s = self._shard_of.pop(id(batch["indices"]), None)
        if s is not None:
            self.shards[s].update_priorities.remote(
                batch["indices"].numpy(), priorities.detach().float().numpy()
            )
