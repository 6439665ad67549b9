"""Env actors: each steps its own vector envs and writes whole vector steps to its replay shard.

Ape-X: the actor holds a copy of the Learner (its Policy acts with the actor's own exploration)
and computes the initial priorities of what it sends from its n-step TD errors. SEED: the actor
holds no network; ``RemotePolicy`` asks the central inference actor for every action.
"""

from __future__ import annotations

import copy
import os
import time
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from omegaconf import OmegaConf

from d2rl.core import Policy
from d2rl.distributed.exploration import explore_as_actor, td_priorities
from d2rl.distributed.transfer import as_tensors
from d2rl.episodes import EpisodeTracker
from d2rl.evaluation import as_obs_tensor


class RemotePolicy(Policy):
    """SEED: actions come from the inference actor, which keeps the recurrent state of each env;
    episode ends are passed along with the next observation."""

    def __init__(self, server: Any, rank: int, num_envs: int) -> None:
        super().__init__()
        self.server, self.rank = server, rank
        self.reset = np.ones(num_envs, dtype=bool)
        self.version = -1

    def reset_state(self, state: Any, done: torch.Tensor) -> Any:
        self.reset |= done.numpy()
        return state

    def act(
        self, obs: torch.Tensor, state: Any = None, explore: bool = True, env_step: int = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], Any]:
        import ray

        action, self.version, before = ray.get(
            self.server.act.remote(self.rank, obs.numpy(), self.reset.copy())
        )
        self.reset[:] = False
        extras = {} if before is None else {"state": tuple(torch.from_numpy(np.array(b)) for b in before)}
        return torch.from_numpy(np.array(action)), extras, state


class EnvActor:
    """One actor (a Ray actor process): ``collect`` runs a chunk of vector steps and sends it."""

    def __init__(self, cfg: dict[str, Any], rank: int, num_actors: int, shard: Any, server: Any = None) -> None:
        import ray

        from d2rl.envs import make_vec_env
        from d2rl.registry import register_config_nodes  # noqa: F401  (entry points load lazily)
        from d2rl.train import build_algorithm

        torch.set_num_threads(1)
        run_cfg = OmegaConf.create(cfg)
        dcfg = run_cfg.distributed
        self.rank, self.shard = rank, shard
        self.pid = os.getpid()
        self.node_id = ray.get_runtime_context().get_node_id()
        with warnings.catch_warnings():  # (a deprecation notice inside Ray)
            warnings.simplefilter("ignore")
            self.restarted = bool(ray.get_runtime_context().was_current_actor_reconstructed)
        n = int(dcfg.envs_per_actor or run_cfg.env.num_envs)
        # a restarted actor draws fresh env seeds instead of replaying its first episodes
        seed = int(run_cfg.seed) + 1000 * (rank + 1) + (self.pid if self.restarted else 0)
        env_cfg = copy.deepcopy(run_cfg.env)
        env_cfg.num_envs = n
        self.envs = make_vec_env(env_cfg, seed)
        self.num_envs = n
        self.learner: Any = None
        self.scratch: Any = None
        self.explore: dict[str, float] = {}
        # Ape-X: a learner copy (acting, initial priorities) and a scratch buffer for n-step TD
        # errors; with sequence storage (R2D2) the scratch is its SequenceBuilder's storage
        vec_steps = -(-int(dcfg.actor_pull_period_env_steps) // n)
        run_cfg.replay.kind = "uniform"
        run_cfg.replay.capacity = 4 * (vec_steps + 16) * n
        built, _ = build_algorithm(run_cfg, self.envs, seed)
        self.builder = getattr(built.storage, "builder", None)  # R2D2: sequences are built here
        if server is None:
            self.learner = built.learner
            self.scratch = None if self.builder is not None else built.storage
            self.policy, self.explore = explore_as_actor(built.policy, rank, num_actors, dcfg, n)
        else:
            self.policy = RemotePolicy(server, rank, n)
        self.version = -1
        self.tracker = EpisodeTracker(n)
        self.rng = np.random.default_rng(seed)
        space: Any = self.envs.single_action_space
        self.space = space
        self.box = isinstance(space, gym.spaces.Box)
        self.obs, self.state = None, None
        self.fresh = True  # the next chunk starts new episodes (first chunk, restart)
        self.pending_add: Any = None
        self.env_steps = 0

    def info(self) -> dict[str, Any]:
        return {"rank": self.rank, "pid": self.pid, "num_envs": self.num_envs, **self.explore}

    def _load(self, weights: tuple[int, list[Any]] | None) -> None:
        import ray

        if weights is None or self.learner is None or weights[0] <= self.version:
            return
        state = ray.get(weights[1][0])  # one object per version, shared by all actors
        self.learner.load_state_dict(as_tensors(state))
        self.version = weights[0]

    def _actions(self, env_step: int, random: bool) -> tuple[np.ndarray, dict[str, Any]]:
        if random and self.builder is None:
            n, space = self.num_envs, self.space
            if isinstance(space, gym.spaces.Discrete):
                return space.start + self.rng.integers(0, space.n, n), {}
            low, high = np.asarray(space.low, np.float32), np.asarray(space.high, np.float32)
            return self.rng.uniform(low, high, (n, *low.shape)).astype(np.float32), {}
        act, extras, self.state = self.policy.act(as_obs_tensor(self.obs), self.state, True, env_step)
        action = act.numpy()
        if self.box:
            action = np.clip(action, self.space.low, self.space.high)
        return action, extras

    @torch.no_grad()
    def collect(
        self, vector_steps: int, weights: tuple[int, list[Any]] | None, env_step: int, random: bool
    ) -> dict[str, Any]:
        """``vector_steps`` steps of the envs with the newest weights (pulled if newer than held);
        the chunk goes to the shard; returns what the driver counts. ``env_step``: the run's env
        steps so far; ``random``: act uniformly (before learning starts)."""
        import ray

        t_start = time.perf_counter()
        self._load(weights)
        if self.obs is None:
            self.obs, _ = self.envs.reset(seed=int(self.rng.integers(1 << 30)))
            self.state = self.policy.initial_state(self.num_envs)
        keys = ("obs", "action", "reward", "next_obs", "terminated", "truncated", "frames_continue")
        out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        ids: list[np.ndarray] = []
        sequences: list[dict[str, Any]] = []
        t_env, has_life = 0.0, False
        for _ in range(vector_steps):
            action, extras = self._actions(env_step, random)
            t0 = time.perf_counter()
            next_obs, reward, terminated, truncated, info = self.envs.step(action)
            t_env += time.perf_counter() - t0
            done = terminated | truncated
            real_next = next_obs
            if done.any():
                real_next = next_obs.copy()
                for i in np.flatnonzero(done):
                    real_next[i] = info["final_obs"][i]
            life = info.get("life_loss")
            has_life = has_life or life is not None
            row = (self.obs, action, reward, real_next, terminated, truncated, life)
            for k, v in zip(keys, row, strict=True):
                out[k].append(np.zeros(self.num_envs, bool) if v is None else np.asarray(v))
            if self.builder is not None:
                sequences += self.builder.add(
                    self.obs, action, reward, terminated, truncated, real_next, extras.get("state")
                )
            elif self.scratch is not None:
                ids.append(self.scratch.add(self.obs, action, reward, real_next, terminated, truncated, life))
            self.tracker.step(reward, done, info)
            if done.any():
                self.state = self.policy.reset_state(self.state, torch.from_numpy(done))
            self.obs = next_obs
        if self.pending_add is not None:  # one chunk in flight: bounded memory, back-pressure
            ray.get(self.pending_add)
        if self.builder is not None:
            prios = self._sequence_priorities(sequences)
            self.pending_add = self.shard.add_sequences.remote(sequences, prios)
        else:
            chunk = {k: np.stack(v) for k, v in out.items() if has_life or k != "frames_continue"}
            priorities = self._priorities(ids)
            self.pending_add = self.shard.add.remote(self.rank, chunk, priorities, self.fresh)
        self.fresh = False
        steps = vector_steps * self.num_envs
        self.env_steps += steps
        return {
            "rank": self.rank,
            "pid": self.pid,
            "node_id": self.node_id,
            "env_steps": steps,
            "episodes": self.tracker.drain(),
            "version": self.version if self.learner is not None else self.policy.version,  # type: ignore[attr-defined]
            "time_s": time.perf_counter() - t_start,
            "env_time_s": t_env,
        }

    def _priorities(self, ids: list[np.ndarray]) -> np.ndarray | None:
        """``[T, n]`` |n-step TD errors| of the chunk's transitions (k-step where the chunk ends
        before n steps: those bootstrap from the newest observation)."""
        if self.scratch is None or not ids:
            return None
        flat = np.concatenate(ids)
        rows, envs = flat // self.scratch.num_envs, flat % self.scratch.num_envs
        prios = td_priorities(self.learner, self.scratch.gather(rows, envs))
        return None if prios is None else prios.numpy().reshape(len(ids), -1)

    def _sequence_priorities(self, sequences: list[dict[str, Any]]) -> np.ndarray | None:
        """R2D2: the learner copy's mixed priorities of the new sequences (SEED: None, the max)."""
        if self.learner is None or not sequences:
            return None
        fields = ("obs", "action", "reward", "terminated", "done", "mask", "first")
        batch: dict[str, Any] = {f: torch.from_numpy(np.stack([q[f] for q in sequences], 1)) for f in fields}
        batch["state"] = tuple(
            torch.from_numpy(np.stack([q["state"][k] for q in sequences], 1))
            for k in range(len(sequences[0]["state"]))
        )
        prios = td_priorities(self.learner, batch)
        return None if prios is None else prios.numpy()

    def flush(self) -> bool:
        """Wait until the last chunk is stored (before a checkpoint reads the shards)."""
        import ray

        if self.pending_add is not None:
            ray.get(self.pending_add)
            self.pending_add = None
        return True
