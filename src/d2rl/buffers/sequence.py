"""Sequence replay with stored recurrent state (R2D2: Kapturowski et al. 2019, "Recurrent Experience
Replay in Distributed Reinforcement Learning", ICLR).

Three pieces, so that sequences can be built where the envs run (an Ape-X actor, a SEED env
actor) and stored where the learner samples:

- ``SequenceBuilder``: per-env accumulator. ``add`` takes one vector step (with the recurrent
  state the policy acted from) and returns the sequences it completed, as plain numpy dicts
  (``Sequence``) that pickle cheaply and go to any ``SequenceReplay``.
- ``SequenceReplay``: a ring of sequences, sampled by priority on ``SumTree``
  (``p_i^alpha / sum_k p_k^alpha``, importance weights ``(N P(i))^-beta / max``), or uniformly.
  ``add(sequences, priorities=None)``, ``sample(B)``, ``update_priorities(indices, priorities)``.
- ``SequenceStorage``: both together behind the transition-replay ``add`` the LocalLoop calls
  (``takes_extras``: it also receives the policy's ``extras``, whose ``"state"`` is the recurrent
  state before the step).

Layout of a sequence (``length = burn_in + seq_len`` slots): the first ``burn_in`` slots only
warm the recurrent state up (no loss), the last ``seq_len`` are trained. Trained parts start at
episode steps ``0, stride, 2 stride, ...`` with ``stride = seq_len - overlap``; the burn-in before
step 0 is padding. A sequence never holds two episodes: after an episode's last step comes one
slot with its final observation (the bootstrap of a truncated episode), then padding; ``mask``
marks real steps and ``first`` an episode's first step (the state entering it is the initial
state). ``state`` is the recurrent state before slot 0 (each tensor of the policy's state with
the batch dimension removed; zeros where slot 0 is padding).

Priorities (R2D2, section 2.3): ``p = eta max_t |delta_t| + (1 - eta) mean_t |delta_t|`` over a
sequence's trained steps (``mixed_priority``), ``eta = 0.9``. New sequences get the largest
priority seen unless the producer gives one (Ape-X actors compute theirs).
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceOf
from typing import Any

import numpy as np
import torch

from d2rl.buffers.prioritized import SumTree

Sequence = dict[str, Any]  # obs [L, *obs], action [L, *act], reward/terminated/done/mask/first [L], state


def mixed_priority(abs_td: torch.Tensor, valid: torch.Tensor, eta: float = 0.9) -> torch.Tensor:
    """``eta * max_t |delta| + (1 - eta) * mean_t |delta|`` over the ``valid`` steps of each
    sequence: ``abs_td [T, B]``, ``valid [T, B]`` (bool) -> ``[B]`` (0 for a sequence with none)."""
    valid = valid.bool()
    td = torch.where(valid, abs_td, torch.zeros_like(abs_td))
    count = valid.sum(0)
    mean = td.sum(0) / count.clamp(min=1)
    return eta * td.max(0).values + (1.0 - eta) * mean


def _state_arrays(state: Any) -> tuple[np.ndarray, ...]:
    if state is None:
        return ()
    return tuple(np.asarray(s.detach().cpu() if isinstance(s, torch.Tensor) else s) for s in state)


class SequenceBuilder:
    """Cuts the step stream of ``num_envs`` envs into overlapping, burnt-in sequences."""

    def __init__(
        self,
        num_envs: int,
        seq_len: int,
        overlap: int,
        burn_in: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype | type = np.float32,
        action_shape: tuple[int, ...] = (),
        action_dtype: np.dtype | type = np.int64,
    ) -> None:
        if seq_len < 1 or burn_in < 0 or not 0 <= overlap < seq_len:
            raise ValueError(
                f"need seq_len >= 1, burn_in >= 0 and 0 <= overlap < seq_len; got {seq_len}, {burn_in}, {overlap}"
            )
        self.num_envs, self.seq_len, self.overlap, self.burn_in = num_envs, seq_len, overlap, burn_in
        self.stride = seq_len - overlap
        self.obs_shape, self.obs_dtype = tuple(obs_shape), np.dtype(obs_dtype)
        self.action_shape, self.action_dtype = tuple(action_shape), np.dtype(action_dtype)
        self.reset()

    @property
    def length(self) -> int:
        """Slots per sequence: burn-in + trained steps."""
        return self.burn_in + self.seq_len

    def reset(self) -> None:
        """Forget every running episode (e.g. when the envs are reset on resume)."""
        n = self.num_envs
        self._records: list[list[tuple[Any, ...]]] = [[] for _ in range(n)]
        self._base = [0] * n  # episode step of _records[i][0]
        self._t = [0] * n  # steps of the running episode so far
        self._next = [0] * n  # episode step where the next sequence's trained part starts

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        next_obs: np.ndarray,
        state: Any = None,
    ) -> list[Sequence]:
        """One vector step of all envs: ``obs [N, *obs]`` acted on with ``action [N, *act]``;
        ``next_obs`` is read only where the episode ended (its real final observation); ``state``
        the policy's recurrent state before the step (tensors ``[K, N, ...]``) or None. Returns
        the sequences completed by this step."""
        states = _state_arrays(state)
        out: list[Sequence] = []
        for i in range(self.num_envs):
            done = bool(terminated[i]) or bool(truncated[i])
            rec = (
                np.array(obs[i], dtype=self.obs_dtype),
                np.array(action[i], dtype=self.action_dtype),
                float(reward[i]),
                bool(terminated[i]),
                done,
                tuple(s[:, i].copy() for s in states),
            )
            self._records[i].append(rec)
            self._t[i] += 1
            if self._t[i] >= self._next[i] + self.seq_len:  # a trained part is complete
                out.append(self._sequence(i, self._next[i], None))
                self._next[i] += self.stride
            if done:
                if self._next[i] < self._t[i]:  # steps not yet in a complete sequence: pad it
                    out.append(self._sequence(i, self._next[i], np.asarray(next_obs[i])))
                self._records[i], self._base[i], self._t[i], self._next[i] = [], 0, 0, 0
            else:
                drop = self._next[i] - self.burn_in - self._base[i]  # records no sequence needs
                if drop > 0:
                    del self._records[i][:drop]
                    self._base[i] += drop
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The running episodes' steps (tensors only), for a resume that continues the envs' episodes."""
        out = {
            "base": torch.tensor(self._base, dtype=torch.int64),
            "t": torch.tensor(self._t, dtype=torch.int64),
            "next": torch.tensor(self._next, dtype=torch.int64),
        }
        for i, recs in enumerate(self._records):
            if not recs:
                continue
            fields = list(zip(*recs, strict=True))  # obs, action, reward, terminated, done, state
            out[f"env{i}.obs"] = torch.from_numpy(np.stack(fields[0]))
            out[f"env{i}.action"] = torch.from_numpy(np.stack(fields[1]))
            out[f"env{i}.reward"] = torch.tensor(fields[2], dtype=torch.float64)
            out[f"env{i}.terminated"] = torch.tensor(fields[3])
            out[f"env{i}.done"] = torch.tensor(fields[4])
            for k, part in enumerate(zip(*fields[5], strict=True)):
                out[f"env{i}.state{k}"] = torch.from_numpy(np.stack(part))
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.reset()
        self._base = [int(x) for x in state["base"]]
        self._t = [int(x) for x in state["t"]]
        self._next = [int(x) for x in state["next"]]
        for i in range(self.num_envs):
            if f"env{i}.obs" not in state:
                continue
            parts = []
            while f"env{i}.state{len(parts)}" in state:
                parts.append(state[f"env{i}.state{len(parts)}"].numpy())
            obs, action = state[f"env{i}.obs"].numpy(), state[f"env{i}.action"].numpy()
            reward, term = state[f"env{i}.reward"].tolist(), state[f"env{i}.terminated"].tolist()
            done = state[f"env{i}.done"].tolist()
            self._records[i] = [
                (
                    obs[j].copy(),
                    action[j].copy(),
                    reward[j],
                    term[j],
                    done[j],
                    tuple(p[j].copy() for p in parts),
                )
                for j in range(obs.shape[0])
            ]

    def _sequence(self, i: int, start: int, final_obs: np.ndarray | None) -> Sequence:
        """The sequence of env ``i`` whose trained part starts at episode step ``start``."""
        L, recs, base, t = self.length, self._records[i], self._base[i], self._t[i]
        s0 = start - self.burn_in  # episode step of slot 0
        obs = np.zeros((L, *self.obs_shape), self.obs_dtype)
        action = np.zeros((L, *self.action_shape), self.action_dtype)
        reward = np.zeros(L, np.float32)
        terminated = np.zeros(L, bool)
        done = np.zeros(L, bool)
        mask = np.zeros(L, bool)
        first = np.zeros(L, bool)
        lo, hi = max(s0, 0), min(s0 + L, t)  # real steps in the window
        for s in range(lo, hi):
            j = s - s0
            o, a, r, te, d, _ = recs[s - base]
            obs[j], action[j], reward[j], terminated[j], done[j] = o, a, r, te, d
        mask[lo - s0 : hi - s0] = True
        if s0 <= 0 < s0 + L:
            first[-s0] = True
        if final_obs is not None and hi - s0 < L:
            obs[hi - s0] = final_obs
        template = recs[0][5] if recs else ()
        state = recs[s0 - base][5] if s0 >= 0 else tuple(np.zeros_like(s) for s in template)
        return {
            "obs": obs,
            "action": action,
            "reward": reward,
            "terminated": terminated,
            "done": done,
            "mask": mask,
            "first": first,
            "state": tuple(state),
        }


class SequenceReplay:
    """``capacity`` sequences of ``length`` slots; ``sample`` returns time-major tensors.

    ``sample(B)``: ``obs [L, B, *obs]``, ``action [L, B, *act]``, ``reward``, ``terminated``,
    ``done``, ``mask``, ``first`` ``[L, B]``, ``state`` (a tuple, each ``[K, B, ...]``), ``weights
    [B]`` and ``indices [B]`` (ids for ``update_priorities``; an id whose slot was overwritten since
    sampling is ignored there).
    """

    _FIELDS = ("obs", "action", "reward", "terminated", "done", "mask", "first")

    def __init__(
        self,
        capacity: int,
        length: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype | type = np.float32,
        action_shape: tuple[int, ...] = (),
        action_dtype: np.dtype | type = np.int64,
        state_shapes: SequenceOf[tuple[int, ...]] = (),
        prioritized: bool = True,
        alpha: float = 0.9,
        beta: float = 0.6,
        priority_eps: float = 1e-6,
        seed: int | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1 sequence, got {capacity}")
        C, L = self.capacity, self.length = capacity, length
        self.obs = np.zeros((C, L, *obs_shape), obs_dtype)
        self.action = np.zeros((C, L, *action_shape), action_dtype)
        self.reward = np.zeros((C, L), np.float32)
        self.terminated = np.zeros((C, L), bool)
        self.done = np.zeros((C, L), bool)
        self.mask = np.zeros((C, L), bool)
        self.first = np.zeros((C, L), bool)
        self.states = [np.zeros((C, *shape), np.float32) for shape in state_shapes]  # each [C, K, ...]
        self.ids = np.full(C, -1, np.int64)  # the id (insert count) of the sequence in each slot
        self.inserted = 0
        self.prioritized, self.alpha, self.beta, self.priority_eps = prioritized, alpha, beta, priority_eps
        self.tree = SumTree(C)
        self.max_priority = 1.0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return min(self.inserted, self.capacity)

    @property
    def nbytes(self) -> int:
        arrays = [getattr(self, f) for f in self._FIELDS] + self.states
        return sum(a.nbytes for a in arrays)

    def add(self, sequences: SequenceOf[Sequence], priorities: np.ndarray | None = None) -> np.ndarray:
        """Store ``sequences`` (from ``SequenceBuilder``); ``priorities [n]`` (mixed, before alpha)
        or the largest seen so far. Returns their ids."""
        n = len(sequences)
        ids = np.arange(self.inserted, self.inserted + n, dtype=np.int64)
        if n == 0:
            return ids
        slots = ids % self.capacity
        for slot, seq in zip(slots, sequences, strict=True):
            for f in self._FIELDS:
                getattr(self, f)[slot] = seq[f]
            for store, s in zip(self.states, seq["state"], strict=True):
                store[slot] = s
        self.ids[slots] = ids
        self.inserted += n
        if priorities is None:
            p = np.full(n, self.max_priority)
        else:
            p = np.abs(np.asarray(priorities, np.float64)) + self.priority_eps
            self.max_priority = max(self.max_priority, float(p.max()))
        self.tree.set(slots, p**self.alpha)
        return ids

    def sample_slots(self, batch_size: int) -> np.ndarray:
        size = len(self)
        if size == 0:
            raise RuntimeError("cannot sample from an empty sequence replay")
        if not self.prioritized:
            return self.rng.integers(0, size, batch_size)
        segment = self.tree.total / batch_size  # stratified, as prioritized.py
        prefix = (np.arange(batch_size) + self.rng.random(batch_size)) * segment
        slots = self.tree.find(prefix)
        bad = self.ids[slots] < 0  # an empty slot hit by float round-off
        if bad.any():
            slots[bad] = self.rng.integers(0, size, int(bad.sum()))
        return slots

    def sample(self, batch_size: int) -> dict[str, Any]:
        slots = self.sample_slots(batch_size)
        batch: dict[str, Any] = {
            f: torch.from_numpy(np.ascontiguousarray(getattr(self, f)[slots].swapaxes(0, 1)))
            for f in self._FIELDS
        }
        batch["state"] = tuple(
            torch.from_numpy(np.ascontiguousarray(s[slots].swapaxes(0, 1))) for s in self.states
        )
        if self.prioritized:
            prob = self.tree.get(slots) / self.tree.total
            weights = (len(self) * np.maximum(prob, 1e-12)) ** -self.beta
            batch["weights"] = torch.from_numpy((weights / weights.max()).astype(np.float32))
        else:
            batch["weights"] = torch.ones(batch_size)
        batch["indices"] = torch.from_numpy(self.ids[slots].copy())
        return batch

    def update_priorities(
        self, indices: torch.Tensor | np.ndarray, priorities: torch.Tensor | np.ndarray
    ) -> None:
        """New (mixed) priorities for the sequences of ``indices``; a no-op for uniform sampling."""
        if not self.prioritized:
            return
        ids = np.asarray(indices, np.int64)
        p = np.abs(np.asarray(priorities, np.float64)) + self.priority_eps
        finite = np.isfinite(p)  # a diverged update's NaN keeps the old priority (see prioritized.py)
        if finite.any():
            self.max_priority = max(self.max_priority, float(p[finite].max()))
        slots = ids % self.capacity
        alive = (self.ids[slots] == ids) & finite  # not overwritten since it was sampled
        self.tree.set(slots[alive], p[alive] ** self.alpha)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The state as the replay's own numpy arrays (no copy); see ``ReplayBuffer.state_arrays``."""
        state = {f: getattr(self, f) for f in self._FIELDS}
        state.update({f"state_{k}": s for k, s in enumerate(self.states)})
        state["ids"] = self.ids
        state["inserted"] = np.array(self.inserted, dtype=np.int64)
        state["priorities"] = self.tree.nodes
        state["max_priority"] = np.array(self.max_priority, dtype=np.float64)
        return state

    def state_dict(self) -> dict[str, Any]:
        """Tensors only (loadable with ``torch.load(weights_only=True)``)."""
        return {name: torch.from_numpy(np.array(a)) for name, a in self.state_arrays().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        arrays = {f: getattr(self, f) for f in self._FIELDS}
        arrays.update({f"state_{k}": s for k, s in enumerate(self.states)})
        arrays["ids"], arrays["priorities"] = self.ids, self.tree.nodes
        for name, current in arrays.items():
            if name not in state:
                raise ValueError(f"sequence replay state has no '{name}'")
            value = state[name].numpy()
            if value.shape != current.shape:
                raise ValueError(
                    f"sequence replay '{name}' has shape {value.shape}, this buffer {current.shape}"
                )
            current[...] = value
        self.inserted = int(state["inserted"])
        self.max_priority = float(state["max_priority"])


class SequenceStorage:
    """A ``SequenceBuilder`` feeding a ``SequenceReplay``: the storage the LocalLoop writes.

    ``takes_extras``: the Loop acts with the policy at every step (also before learning starts)
    and passes ``extras``; ``extras["state"]`` is the recurrent state the policy acted from.
    Checkpoints hold the replay and the running episodes' steps: a resume that continues the envs'
    episodes (exact resume) continues them too; one that restarts the envs calls ``cut_episodes``,
    which drops them.
    """

    takes_extras = True

    def __init__(self, builder: SequenceBuilder, replay: SequenceReplay) -> None:
        self.builder, self.replay = builder, replay

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        frames_continue: np.ndarray | None = None,
        extras: dict[str, Any] | None = None,
    ) -> np.ndarray:
        state = (extras or {}).get("state")
        sequences = self.builder.add(obs, action, reward, terminated, truncated, next_obs, state)
        return self.replay.add(sequences)

    def cut_episodes(self) -> None:
        self.builder.reset()

    def __len__(self) -> int:
        return len(self.replay)

    def sample(self, batch_size: int) -> dict[str, Any]:
        return self.replay.sample(batch_size)

    def update_priorities(
        self, indices: torch.Tensor | np.ndarray, priorities: torch.Tensor | np.ndarray
    ) -> None:
        self.replay.update_priorities(indices, priorities)

    @property
    def rng(self) -> np.random.Generator:
        """The replay's sampling Generator (saved by an exact resume)."""
        return self.replay.rng

    def state_dict(self) -> dict[str, Any]:
        """The replay's tensors and, under ``builder.*``, the running episodes' steps."""
        state = self.replay.state_dict()
        state.update({f"builder.{k}": v for k, v in self.builder.state_dict().items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.replay.load_state_dict({k: v for k, v in state.items() if not k.startswith("builder.")})
        builder = {k[len("builder.") :]: v for k, v in state.items() if k.startswith("builder.")}
        if builder:
            self.builder.load_state_dict(builder)
