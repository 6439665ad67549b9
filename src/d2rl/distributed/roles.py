"""Starts and stops the Ray actors of a run: replay shards, env actors, SEED's inference actor,
each with the CPUs, GPUs and custom resources that ``distributed.*`` gives its role."""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import Any

from d2rl.buffers.make import make_replay


def _options(cpus: float, gpus: float, resources: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {"num_cpus": float(cpus), "num_gpus": float(gpus)}
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
            int(storage.n_step),
            float(storage.gamma),
            ctx.facts,
        )
        capacity = max(1, int(cfg["replay"]["capacity"]) // n_actors)
        shard_cls = ray.remote(ReplayShard).options(
            max_concurrency=1, **_options(dcfg.replay_cpus, 0.0, dcfg.replay_resources)
        )
        shards = []
        for s in range(n_shards):
            mine = {r: st for r, st in (saved or {}).items() if int(r) % n_shards == s}
            shards.append(
                shard_cls.remote(functools.partial(make, seed + 17 * s), capacity, seed + 31 * s, mine or None)
            )
        server = None
        if str(dcfg.backend) == "seed":
            from d2rl.distributed.inference import InferenceServer

            total_envs = n_actors * n_envs
            batch = int(dcfg.inference_batch_size) or total_envs
            server = (
                ray.remote(InferenceServer)
                .options(max_concurrency=max(64, 2 * n_actors),
                         **_options(dcfg.inference_cpus, dcfg.inference_gpus, dcfg.inference_resources))
                .remote(cfg, seed, batch, float(dcfg.inference_timeout_ms))
            )
        actor_cls = ray.remote(EnvActor).options(
            max_restarts=int(dcfg.actor_max_restarts),
            max_task_retries=0,
            **_options(dcfg.actor_cpus, dcfg.actor_gpus, dcfg.actor_resources),
        )
        actors = [
            actor_cls.remote(cfg, rank, n_actors, shards[rank % n_shards], server) for rank in range(n_actors)
        ]
        return cls(shards, actors, server, [0.0] * n_shards)

    def shard_weights(self) -> list[float]:
        """Shards are sampled in proportion to their size (equal until the first stats arrive)."""
        sizes = self.shard_sizes
        return sizes if sum(sizes) > 0 else [1.0] * len(self.shards)

    def on_publish(self, weights: tuple[int, list[Any]]) -> None:
        if self.server is not None:
            self.server.set_weights.remote(weights[0], weights[1])

    def stats(self) -> dict[str, float]:
        import ray

        out: dict[str, float] = {}
        shard_stats = ray.get([s.stats.remote() for s in self.shards], timeout=30)
        self.shard_sizes = [st["size"] for st in shard_stats]
        for k in ("size", "inserted", "sampled"):
            out[k] = sum(st[k] for st in shard_stats)
        if self.server is not None:
            out.update(ray.get(self.server.stats.remote(), timeout=30))
        return out

    def stop(self) -> None:
        import ray

        for handle in [*self.actors, *self.shards, *([self.server] if self.server is not None else [])]:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(handle, no_restart=True)
