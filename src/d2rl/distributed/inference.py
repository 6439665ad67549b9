"""SEED's central inference actor (Espeholt et al. 2019): env actors send observations, it batches
them across actors and runs the Policy once per batch.

A batch goes when it holds ``batch_size`` envs' observations or when its oldest request has waited
``timeout_ms``, so a slow actor cannot stall the others. Recurrent state is kept per env here
(actors hold none); an env whose episode ended has its state reset before its next step. The
Policy explores with the algorithm's own schedule at the global env step count (one policy for
all actors: no per-actor epsilon, unlike Ape-X).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils._pytree import tree_flatten, tree_unflatten

from d2rl.distributed.transfer import as_tensors


def _batch_dims(policy: Any) -> list[int] | None:
    """The batch axis of each tensor in the policy's recurrent state (None: no state)."""
    first = policy.initial_state(1)
    if first is None:
        return None
    one, _ = tree_flatten(first)
    two, _ = tree_flatten(policy.initial_state(2))
    dims = []
    for a, b in zip(one, two, strict=True):
        diff = [i for i, (x, y) in enumerate(zip(a.shape, b.shape, strict=True)) if x != y]
        dims.append(diff[0] if diff else 0)
    return dims


class InferenceServer:
    """An async Ray actor: ``act`` calls from all env actors are gathered into batches."""

    def __init__(self, cfg: dict[str, Any], seed: int, batch_size: int, timeout_ms: float) -> None:
        from d2rl.envs import make_vec_env
        from d2rl.train import build_algorithm

        torch.set_num_threads(1)
        run_cfg = OmegaConf.create(cfg)
        run_cfg.replay.capacity = 64
        probe = make_vec_env(run_cfg.env, seed, num_envs=1)
        try:
            built, _ = build_algorithm(run_cfg, probe, seed)
        finally:
            probe.close()
        self.learner, self.policy = built.learner, built.policy
        self.batch_size, self.timeout = max(1, batch_size), timeout_ms / 1000.0
        self.dims = _batch_dims(self.policy)
        self.states: dict[int, Any] = {}  # actor rank -> recurrent state of its envs
        self.pending: list[tuple[int, np.ndarray, np.ndarray, asyncio.Future[Any], float]] = []
        self.timer: asyncio.TimerHandle | None = None
        self.version = -1
        self.env_steps = 0
        self.n_batches, self.n_envs, self.n_requests, self.latency = 0, 0, 0, 0.0
        self.t_stats = time.perf_counter()

    async def set_weights(self, version: int, ref: list[Any]) -> None:
        if version > self.version:
            self.learner.load_state_dict(as_tensors(await ref[0]))
            self.version = version

    async def act(self, rank: int, obs: np.ndarray, reset: np.ndarray) -> tuple[np.ndarray, int, Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.append((rank, obs, reset, fut, time.perf_counter()))
        if sum(p[1].shape[0] for p in self.pending) >= self.batch_size:
            self._flush()
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.timeout, self._flush)
        return await fut  # type: ignore[no-any-return]

    def _state_of(self, rank: int, n: int, reset: np.ndarray) -> Any:
        state = self.states.get(rank)
        if state is None:
            return self.policy.initial_state(n)
        if reset.any():
            state = self.policy.reset_state(state, torch.from_numpy(np.array(reset)))
        return state

    @torch.no_grad()
    def _flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        batch, self.pending = self.pending, []
        if not batch:
            return
        sizes = [p[1].shape[0] for p in batch]
        obs = torch.as_tensor(np.concatenate([p[1] for p in batch]))
        if obs.dtype == torch.float64:
            obs = obs.float()
        state, parts = None, None
        if self.dims is not None:
            parts = [tree_flatten(self._state_of(p[0], n, p[2]))[0] for p, n in zip(batch, sizes, strict=True)]
            _, spec = tree_flatten(self.policy.initial_state(1))
            leaves = [torch.cat([part[j] for part in parts], d) for j, d in enumerate(self.dims)]
            state = tree_unflatten(leaves, spec)
        action, _, new_state = self.policy.act(obs, state, True, self.env_steps)
        action_np = action.numpy()
        now, start = time.perf_counter(), 0
        for j, ((rank, _, _, fut, t0), n) in enumerate(zip(batch, sizes, strict=True)):
            # the state each env acted from goes back with its actions (sequence replay stores it)
            before = None if parts is None else tuple(leaf.numpy() for leaf in parts[j])
            if self.dims is not None:
                leaves, spec = tree_flatten(new_state)
                mine = [leaf.narrow(d, start, n).clone() for leaf, d in zip(leaves, self.dims, strict=True)]
                self.states[rank] = tree_unflatten(mine, spec)
            if not fut.done():
                fut.set_result((action_np[start : start + n], self.version, before))
            self.latency += now - t0
            start += n
        self.env_steps += start
        self.n_batches += 1
        self.n_envs += start
        self.n_requests += len(batch)

    async def stats(self) -> dict[str, float]:
        """Since the last call: mean batch fill (envs per batch / batch size), mean latency (ms
        from a request's arrival to its answer), batches per second."""
        now = time.perf_counter()
        out = {"batches_per_s": self.n_batches / max(now - self.t_stats, 1e-9)}
        if self.n_batches > 0:  # (none since the last call: no fill or latency to report)
            out["batch_fill"] = self.n_envs / self.n_batches / self.batch_size
            out["latency_ms"] = 1000.0 * self.latency / max(1, self.n_requests)
        self.n_batches, self.n_envs, self.n_requests, self.latency, self.t_stats = 0, 0, 0, 0.0, now
        return out
