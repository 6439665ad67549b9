"""Starts and stops the Ray actors of a run: replay shards, env actors, SEED's inference actor,
each with the CPUs, GPUs and custom resources that ``distributed.*`` gives its role."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from d2rl.buffers.make import make_replay


def _options(cpus: float, gpus: float, resources: Any, task_events: bool) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "num_cpus": float(cpus),
        "num_gpus": float(gpus),
        "enable_task_events": bool(task_events),  # distributed.ray_task_events
    }
    extra = {str(k): float(v) for k, v in dict(resources or {}).items()}
    if extra:
        opts["resources"] = extra
    return opts


def _make_buffer(
    replay_cfg: Any, obs_space: Any, act_space: Any, num_envs: int, n_step: int, gamma: float, facts: Any,
    seed: int, capacity: int,
) -> Any:
    cfg = dict(replay_cfg)
    cfg["capacity"] = capacity
    cfg["kind"] = "uniform" if cfg["kind"] == "uniform" else "prioritized"  # Ape-X replay is prioritized
    from types import SimpleNamespace

    return make_replay(SimpleNamespace(**cfg), obs_space, act_space, num_envs, n_step, gamma, facts, seed)


def _sequence_replay_factory(like: Any, capacity: int, seed: int) -> Callable[[], Any]:
    """Makes, in the shard's process (arrays from the object store would be read-only), an empty
    ``SequenceReplay`` shaped as ``like`` (the driver's) holding ``capacity`` sequences."""
    from d2rl.buffers.sequence import SequenceReplay

    return functools.partial(
        SequenceReplay,
        capacity,
        like.length,
        tuple(like.obs.shape[2:]),
        like.obs.dtype,
        tuple(like.action.shape[2:]),
        like.action.dtype,
        [tuple(s.shape[1:]) for s in like.states],
        prioritized=like.prioritized,
        alpha=like.alpha,
        beta=like.beta,
        priority_eps=like.priority_eps,
        seed=seed,
    )


@dataclass
class Roles:
    shards: list[Any]
    actors: list[Any]
    server: Any = None
    shard_sizes: list[float] = field(default_factory=list)

    @classmethod
    def start(
        cls, cfg: dict[str, Any], ctx: Any, storage: Any, dcfg: Any, seed: int, saved: dict[int, Any] | None
    ) -> Roles:
        """``ctx``: the driver's ``BuildContext`` (spaces, env facts); ``storage``: the replay the
        algorithm built locally, whose n-step and discount the shards' buffers take."""
        import ray

        from d2rl.distributed.actor import EnvActor
        from d2rl.distributed.replay import ReplayShard

        n_actors, n_shards = int(dcfg.num_actors), max(1, int(dcfg.num_replay_shards))
        n_envs = int(dcfg.envs_per_actor or cfg["env"]["num_envs"])
        make = functools.partial(
            _make_buffer,
            cfg["replay"],
            ctx.observation_space,
            ctx.action_space,
            n_envs,
            int(getattr(storage, "n_step", 1)),  # (sequence storage: no transition slots)
            float(getattr(storage, "gamma", 0.99)),
            ctx.facts,
        )
        capacity = max(1, int(cfg["replay"]["capacity"]) // n_actors)
        shard_cls = ray.remote(ReplayShard).options(
            max_concurrency=1, **_options(dcfg.replay_cpus, 0.0, dcfg.replay_resources, dcfg.ray_task_events)
        )
        seq_replay = getattr(storage, "replay", None)  # R2D2's SequenceReplay: one per shard
        shards = []
        for s in range(n_shards):
            mine = {
                r: st
                for r, st in (saved or {}).items()
                if (r == f"sequences/{s}" if isinstance(r, str) else int(r) % n_shards == s)
            }
            sequences = None
            if seq_replay is not None:
                per_shard = int(cfg["replay"]["capacity"]) // max(1, storage.builder.stride) // n_shards
                sequences = _sequence_replay_factory(seq_replay, max(1, per_shard), seed + 17 * s)
            shards.append(
                shard_cls.remote(
                    functools.partial(make, seed + 17 * s), capacity, seed + 31 * s, mine or None, sequences
                )
            )
        server = None
        if str(dcfg.backend) == "seed":
            from d2rl.distributed.inference import InferenceServer

            total_envs = n_actors * n_envs
            batch = int(dcfg.inference_batch_size) or total_envs
            server = (
                ray.remote(InferenceServer)
                .options(max_concurrency=max(64, 2 * n_actors),
                         **_options(dcfg.inference_cpus, dcfg.inference_gpus, dcfg.inference_resources,
                                   dcfg.ray_task_events))
                .remote(cfg, seed, batch, float(dcfg.inference_timeout_ms))
            )
        actor_cls = ray.remote(EnvActor).options(
            max_restarts=int(dcfg.actor_max_restarts),
            max_task_retries=0,
            **_options(dcfg.actor_cpus, dcfg.actor_gpus, dcfg.actor_resources, dcfg.ray_task_events),
        )
        actors = [
            actor_cls.remote(cfg, rank, n_actors, shards[rank % n_shards], server) for rank in range(n_actors)
        ]
        return cls(shards, actors, server, [0.0] * n_shards)

    def shard_weights(self) -> list[float]:
        """Shards are sampled in proportion to their size (equal until the first stats arrive)."""
        sizes = self.shard_sizes
        return sizes if sum(sizes) > 0 else [1e-9] * len(self.shards)

    def on_publish(self, weights: tuple[int, list[Any]]) -> None:
        if self.server is not None:
            self.server.set_weights.remote(weights[0], weights[1])

    def refresh_sizes(self) -> None:
        """Non-blocking: take the shard sizes asked for last time if they arrived, ask again."""
        import ray

        pending = getattr(self, "_size_refs", None)
        if pending:
            ready, _ = ray.wait(pending, num_returns=len(pending), timeout=0)
            if len(ready) < len(pending):
                return
            self.shard_sizes = [st["size"] for st in ray.get(pending)]
        self._size_refs = [s.stats.remote() for s in self.shards]

    def stats(self) -> dict[str, float]:
        import ray

        out: dict[str, float] = {}
        shard_stats = ray.get([s.stats.remote() for s in self.shards], timeout=600)
        self.shard_sizes = [st["size"] for st in shard_stats]
        for k in ("size", "inserted", "sampled"):
            out[k] = sum(st[k] for st in shard_stats)
        if self.server is not None:
            out.update(ray.get(self.server.stats.remote(), timeout=600))
        return out

    def stop(self) -> None:
        import ray

        for handle in [*self.actors, *self.shards, *([self.server] if self.server is not None else [])]:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(handle, no_restart=True)
