"""The driver side of Ape-X and SEED: the Lightning Trainer's data source, as ``LocalLoop`` is.

It starts the shards, the actors (and SEED's inference actor), keeps one ``collect`` task in
flight per actor, counts env steps and episodes from their results, restarts failed actors,
yields ``ShardBatches`` (the gradient steps due) to ``training_step`` and publishes the
learner's weights every ``publish_period_updates`` updates (one ``ray.put`` per version).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from d2rl.core import Built, ReplaySchedule, check_stop
from d2rl.distributed.replay import ShardBatches
from d2rl.distributed.roles import Roles
from d2rl.distributed.transfer import as_arrays, as_tensors
from d2rl.episodes import EpisodeTracker
from d2rl.errors import D2RLError

log = logging.getLogger(__name__)


class DistributedLoop:
    """Yields one ``ShardBatches`` per learner step until the env-step or update target is met."""

    def __init__(self, cfg: DictConfig, built: Built, ctx: Any, seed: int) -> None:
        if not isinstance(built.schedule, ReplaySchedule):
            raise D2RLError(
                f"distributed={cfg.distributed.backend} runs off-policy (replay) algorithms; "
                f"'{cfg.algo.name}' is on-policy: use distributed=local"
            )
        dcfg = cfg.distributed
        self.cfg, self.dcfg, self.built, self.ctx = cfg, dcfg, built, ctx
        self.schedule: ReplaySchedule = built.schedule
        self.policy, self.learner = built.policy, built.learner
        self.total_env_steps = int(cfg.trainer.total_env_steps)
        self.total_updates = int(cfg.trainer.get("total_learner_updates", 0) or 0)
        self.updates_per_step = max(1, int(dcfg.updates_per_learner_step))
        self.publish_period = max(1, int(dcfg.publish_period_updates))
        self.pace = str(dcfg.learner_pace)
        if self.pace not in ("schedule", "free"):
            raise D2RLError(f"distributed.learner_pace must be schedule or free, got '{self.pace}'")
        self.num_actors = int(dcfg.num_actors)
        if self.num_actors < 1:
            raise D2RLError("distributed.num_actors must be >= 1")
        self.envs_per_actor = int(dcfg.envs_per_actor or cfg.env.num_envs)
        self.chunk_vector_steps = max(1, -(-int(dcfg.actor_pull_period_env_steps) // self.envs_per_actor))
        self.env_steps = self.updates = self.round = self.episodes_seen = 0
        self.total_rounds = 1 << 62  # set to the last round once a target is met
        self.env_steps_per_round = 0  # (ProgressBar: its total is total_env_steps)
        self.tracker = EpisodeTracker(1)
        self.timings: dict[str, float] = {"learner_step": 0.0, "update": 0.0, "wait": 0.0}
        self.on_vector_step: list[Callable[[Any], None]] = []
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.roles: Roles | None = None
        self.inflight: dict[Any, int] = {}  # collect ref -> actor rank
        self._polled_at = 0.0  # monotonic time of the last poll between learner updates
        self.weights: tuple[int, list[Any]] | None = None
        self.version = -1
        self.published_at = 0
        self.restarts = 0
        self.failures = np.zeros(self.num_actors, dtype=np.int64)  # consecutive, per actor
        self.pids: dict[int, int] = {}
        self.unavailable_since: dict[int, float] = {}
        self.actor_nodes: dict[int, str] = {}  # rank -> Ray node id it last ran on
        self.actor_steps = np.zeros(self.num_actors, dtype=np.int64)
        self.staleness: list[int] = []
        self.collecting = True
        self.saved_storage: dict[int, Any] | None = None
        self._t0 = time.perf_counter()
        self._sizes_at = 0.0

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        plain = OmegaConf.to_container(self.cfg, resolve=True)
        self.roles = Roles.start(plain, self.ctx, self.built.storage, self.dcfg, self.seed, self.saved_storage)
        self.saved_storage = None
        self.publish()
        for rank in range(self.num_actors):
            self._submit(rank)

    def shutdown(self) -> None:
        if self.roles is not None:
            self.roles.stop()
            self.roles = None
        self.inflight.clear()

    # -- the Trainer's data source ------------------------------------------------------------
    def __len__(self) -> int:
        return max(1, self.total_rounds - self.round) if self.total_rounds < (1 << 62) else 1 << 30

    def __iter__(self) -> Iterator[ShardBatches]:
        if self.roles is None:
            self.start()
        while self.round < self.total_rounds:
            item = self._next_item()
            self.round += 1
            t0 = time.perf_counter()
            yield item
            self.timings["learner_step"] += time.perf_counter() - t0
            self.updates += item.done
            if self.updates - self.published_at >= self.publish_period:
                self.publish()

    def _targets_met(self) -> bool:
        if self.total_updates > 0 and self.updates >= self.total_updates:
            return True
        return self.env_steps >= self.total_env_steps

    def _owed(self) -> int:
        """Gradient steps due now: the schedule's per env step (fractions carried), or a full
        learner step whenever replay is warm (``learner_pace=free``)."""
        starts = self.schedule.learning_starts_env_steps
        if self.env_steps < max(starts, self.schedule.batch_size):
            return 0
        if self.pace == "free":
            return self.updates_per_step
        due = math.floor((self.env_steps - starts) * self.schedule.gradient_steps_per_env_step)
        return max(0, due - self.updates)

    def _next_item(self) -> ShardBatches:
        t0 = time.perf_counter()
        while True:
            check_stop()
            self.poll(0.0 if self.env_steps == 0 else 0.02)
            owed = self._owed()
            if self.total_updates > 0:
                owed = min(owed, self.total_updates - self.updates)
            finished = self._targets_met()
            if finished:
                self.collecting = False
                owed = 0 if self.pace == "free" else owed
            count = min(owed, self.updates_per_step)
            if count >= self.updates_per_step or (finished and count >= 0):
                break
        if finished and owed <= count:
            self.total_rounds = self.round + 1  # this is the last learner step
        self.timings["wait"] += time.perf_counter() - t0
        assert self.roles is not None
        if time.monotonic() - self._sizes_at > 1.0:  # shard sizes: sampling weights, len(storage)
            self.roles.refresh_sizes()
            self._sizes_at = time.monotonic()
        rc = self.cfg.replay
        frac = min(1.0, self.env_steps / max(1, self.total_env_steps))
        beta = float(rc.beta_initial) + (float(rc.beta_final) - float(rc.beta_initial)) * frac
        return ShardBatches(
            self.roles.shards,
            self.roles.shard_weights(),
            count,
            self.schedule.batch_size,
            beta,
            self.env_steps,
            self.round,
            self.total_rounds,
            self.rng,
            self.timings,
            # A learner step can be many updates long (Pong: 32 updates, 1.6 s): actors that finish a
            # chunk meanwhile get their next one at once instead of idling until the step ends
            # (each Pong actor ran one 64-step chunk per learner step: 39 env steps/s, 2 per update).
            between=self._poll_between_updates,
        )

    def _poll_between_updates(self) -> None:
        """``poll(0)`` at most every 2 ms: a chunk waits at most that long, and the driver's
        ``ray.wait`` and progress listeners cost no more than a fixed share of short updates."""
        now = time.monotonic()
        if now - self._polled_at >= 0.002:
            self._polled_at = now
            self.poll(0.0)

    # -- actors -------------------------------------------------------------------------------
    def _committed(self) -> int:
        return self.env_steps + len(self.inflight) * self.chunk_vector_steps * self.envs_per_actor

    def _lagging(self) -> bool:
        """``learner_pace=schedule``: hold the actors while the learner owes many updates."""
        return self.pace == "schedule" and self._owed() > 4 * self.updates_per_step

    def _submit(self, rank: int) -> None:
        assert self.roles is not None
        random = self.env_steps < self.schedule.learning_starts_env_steps
        ref = self.roles.actors[rank].collect.remote(self.chunk_vector_steps, self.weights, self.env_steps, random)
        self.inflight[ref] = rank

    def poll(self, timeout: float) -> None:
        """Take finished chunks, resubmit (unless a target is met or the learner lags)."""
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

        held = [r for r in range(self.num_actors) if r not in self.inflight.values()]
        if self.collecting and not self._lagging():
            for rank in held:
                if self._committed() < self.total_env_steps:
                    self._submit(rank)
        if not self.inflight:
            if timeout > 0:
                time.sleep(timeout)
            return
        ready, _ = ray.wait(list(self.inflight), num_returns=len(self.inflight), timeout=timeout)
        for ref in ready:
            rank = self.inflight.pop(ref)
            try:
                stats = ray.get(ref)
            except RayTaskError as e:  # an exception inside collect (e.g. an env raising)
                self._failed(rank, str(e).strip().splitlines()[-1][:300], kill=True)
            except ActorUnavailableError:  # restarting: not a new failure, wait for it
                self._unavailable(rank)
            except RayActorError as e:  # the process died (killed, OOM, node lost)
                self._failed(rank, type(e).__name__, kill=False)
            else:
                self._account(stats)
            if self.collecting and not self._lagging() and self._committed() < self.total_env_steps:
                self._submit(rank)
        for listener in self.on_vector_step:
            listener(self)

    def _failed(self, rank: int, why: str, kill: bool) -> None:
        import ray

        assert self.roles is not None
        self.failures[rank] += 1
        limit = int(self.dcfg.actor_max_restarts)
        log.warning("actor %d failed (%s); Ray restarts it (%d/%d)", rank, why, self.failures[rank], limit)
        if self.failures[rank] > limit + 2:
            raise D2RLError(
                f"actor {rank} keeps failing ({why}); distributed.actor_max_restarts={limit} exhausted"
            )
        if kill:
            ray.kill(self.roles.actors[rank], no_restart=False)
        time.sleep(0.1 * self.failures[rank])

    def _unavailable(self, rank: int) -> None:
        since = self.unavailable_since.setdefault(rank, time.monotonic())
        if time.monotonic() - since > float(self.dcfg.actor_restart_timeout_s):
            raise D2RLError(
                f"actor {rank} has been unavailable (restarting) for over "
                f"{self.dcfg.actor_restart_timeout_s} s (distributed.actor_restart_timeout_s)"
            )
        time.sleep(0.2)

    def _account(self, stats: dict[str, Any]) -> None:
        rank = int(stats["rank"])
        pid = int(stats["pid"])
        if rank in self.pids and self.pids[rank] != pid:
            self.restarts += 1
            log.warning("actor %d restarted (pid %d -> %d); restarts so far: %d", rank, self.pids[rank], pid,
                        self.restarts)
        self.pids[rank] = pid
        self.actor_nodes[rank] = str(stats.get("node_id", ""))
        self.failures[rank] = 0
        self.unavailable_since.pop(rank, None)
        steps = int(stats["env_steps"])
        self.env_steps += steps
        self.actor_steps[rank] += steps
        if stats["version"] >= 0:
            self.staleness.append(self.version - int(stats["version"]))
        for ret, length in stats["episodes"]:
            self.tracker._finish(float(ret), int(length))

    # -- weights ------------------------------------------------------------------------------
    def publish(self) -> None:
        """One object per version (the learner's state, on CPU); actors pull it by reference."""
        import ray

        # numpy arrays: zero-copy out of the object store in every actor (d2rl.distributed.transfer)
        state = as_arrays(self.learner.state_dict())
        self.version = self.updates
        self.weights = (self.version, [ray.put(state)])
        self.published_at = self.updates
        if self.roles is not None:
            self.roles.on_publish(self.weights)

    # -- metrics and checkpoints --------------------------------------------------------------
    def counters(self) -> dict[str, Any]:
        return {
            "env_steps": self.env_steps,
            "learner_updates": self.updates,
            "round": self.round,
            "episodes": self.tracker.episodes,
            "actor_restarts": self.restarts,
            "num_actors": self.num_actors,
        }

    def load_counters(self, counters: dict[str, Any]) -> None:
        self.env_steps = int(counters["env_steps"])
        self.updates = self.published_at = int(counters.get("learner_updates", 0))
        self.round = int(counters.get("round", 0))
        self.tracker.episodes = int(counters.get("episodes", 0))
        self.restarts = int(counters.get("actor_restarts", 0))

    def storage_state(self) -> dict[str, Any]:
        import ray
        from ray.exceptions import GetTimeoutError, RayError

        if self.roles is None:
            return {}
        for ref in [a.flush.remote() for a in self.roles.actors]:
            # a dead or restarting actor's last chunk is simply not in the checkpoint
            with contextlib.suppress(RayError, GetTimeoutError):
                ray.get(ref, timeout=60)
        slots: dict[Any, Any] = {}
        try:
            parts = ray.get([s.state_dict.remote() for s in self.roles.shards], timeout=300)
            for i, part in enumerate(as_tensors(p) for p in parts):
                for key, value in part.items():
                    slots[f"sequences/{i}" if key == "sequences" else key] = value
        except (RayError, GetTimeoutError) as e:
            log.warning("replay not saved in this checkpoint: %s", str(e).splitlines()[0][:200])
            return {}
        return {"replay_slots": slots}
