"""``distributed=local``: one process steps the vector envs with the Policy, writes Storage and
hands the Learner its experience on the algorithm's schedule. The one loop of every algorithm,
and the debug path of the Ray loops.

The loop is the Trainer's data source: a *sized* iterable, so Lightning fetches each item only
when ``training_step`` asks for it (no prefetch). An on-policy rollout is therefore collected
with exactly the parameters the previous update left; off-policy acting within a round uses the
parameters of the end of the previous round (a lag of at most ``round_env_steps`` env steps).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from d2rl.buffers.batches import ReplayBatches
from d2rl.buffers.rollout import Rollout, RolloutStorage, make_rollout
from d2rl.core import Policy, ReplaySchedule, RolloutSchedule, check_stop
from d2rl.episodes import EpisodeTracker
from d2rl.evaluation import as_obs_tensor
from d2rl.nan_guard import check_observation


class LocalLoop:
    """Yields one experience item (a ``Rollout`` or ``ReplayBatches``) per learner step."""

    def __init__(
        self,
        envs: gym.vector.VectorEnv,
        policy: Policy,
        storage: Any,
        schedule: RolloutSchedule | ReplaySchedule,
        total_env_steps: int,
        seed: int,
        episode_stats: bool = False,
        total_episodes: int | None = None,
    ) -> None:
        """``total_episodes``: also stop after the learner step in which that many episodes had
        finished (a replay round stops at the vector step that finished the last one)."""
        self.envs, self.policy, self.storage, self.schedule = envs, policy, storage, schedule
        self.total_episodes = total_episodes
        self.num_envs = n = envs.num_envs
        if isinstance(schedule, RolloutSchedule):
            self.vector_steps = schedule.num_steps
        else:
            self.vector_steps = max(1, -(-schedule.round_env_steps // n))
        self.total_rounds = max(1, math.ceil(total_env_steps / self.env_steps_per_round))
        self.env_steps = 0
        self.round = 0
        self.grad_credit = 0.0  # fractional gradient steps carried to the next round
        self.tracker = EpisodeTracker(n, episode_stats=episode_stats)
        # seconds spent stepping envs, acting, storing; "learner_step": the Trainer's time between
        # two items (training_step, Lightning's hooks, callbacks), of which "update" is training_step
        self.timings = {"env": 0.0, "act": 0.0, "store": 0.0, "learner_step": 0.0, "update": 0.0}
        self.on_vector_step: list[Callable[[LocalLoop], None]] = []  # progress listeners
        self.rng = np.random.default_rng(seed)
        space: Any = envs.single_action_space
        self._box = isinstance(space, gym.spaces.Box)
        if self._box:
            self._low = np.asarray(space.low, np.float32)
            self._high = np.asarray(space.high, np.float32)
        self._seed = seed
        self.obs: np.ndarray | None = None
        obs_dtype = getattr(envs.single_observation_space, "dtype", None)
        self._float_obs = obs_dtype is not None and np.dtype(obs_dtype).kind == "f"  # NaN/inf checked

    @property
    def env_steps_per_round(self) -> int:
        return self.vector_steps * self.num_envs

    def start(self, seed: int | None = None) -> None:
        """Reset the envs (a resumed run restarts its episodes; its replay cuts the old ones)."""
        self.obs, _ = self.envs.reset(seed=self._seed if seed is None else seed)
        self.first = np.ones(self.num_envs, dtype=bool)
        self.state = self.policy.initial_state(self.num_envs)
        if self.env_steps > 0 and hasattr(self.storage, "cut_episodes"):
            self.storage.cut_episodes()

    # -- the Trainer's data source ------------------------------------------------------------
    def __len__(self) -> int:
        return max(0, self.total_rounds - self.round)

    def __iter__(self) -> Iterator[Rollout | ReplayBatches]:
        if self.obs is None:
            self.start()
        while self.round < self.total_rounds:
            item = self.collect_round()
            self.round += 1
            if self.episodes_done():
                self.total_rounds = self.round  # this is the last learner step
            t0 = time.perf_counter()
            yield item
            self.timings["learner_step"] += time.perf_counter() - t0

    def episodes_done(self) -> bool:
        return self.total_episodes is not None and self.tracker.episodes >= self.total_episodes

    def collect_round(self) -> Rollout | ReplayBatches:
        if isinstance(self.schedule, RolloutSchedule):
            return self._rollout()
        return self._replay_round(self.schedule)

    # -- acting -------------------------------------------------------------------------------
    def _env_action(self, action: np.ndarray) -> np.ndarray:
        return np.clip(action, self._low, self._high) if self._box else action

    def _random_actions(self) -> np.ndarray:
        space: Any = self.envs.single_action_space
        n = self.num_envs
        if isinstance(space, gym.spaces.Discrete):
            return space.start + self.rng.integers(0, space.n, n)
        if self._box:
            return self.rng.uniform(self._low, self._high, (n, *self._low.shape)).astype(np.float32)
        return np.asarray(self.envs.action_space.sample())

    def _step(self, env_action: np.ndarray) -> tuple[Any, ...]:
        t0 = time.perf_counter()
        out = self.envs.step(env_action)
        self.timings["env"] += time.perf_counter() - t0
        return out

    def _after_step(self, done: np.ndarray, reward: np.ndarray, info: dict[str, Any]) -> None:
        if self._float_obs and self.obs is not None:
            check_observation(self.obs, self.env_steps + self.num_envs)
        self.tracker.step(reward, done, info)
        self.first = done
        if self.state is not None and done.any():
            self.state = self.policy.reset_state(self.state, torch.from_numpy(done))
        self.env_steps += self.num_envs
        for listener in self.on_vector_step:
            listener(self)
        check_stop()

    @torch.no_grad()
    def _rollout(self) -> Rollout:
        storage: RolloutStorage = self.storage
        arrays, policy, clock = storage.arrays, self.policy, time.perf_counter
        storage.reset()
        initial_state = self.state
        for t in range(self.vector_steps):
            t0 = clock()
            action, extras, self.state = policy.act(as_obs_tensor(self.obs), self.state, True, self.env_steps)
            action_np = action.numpy()
            self.timings["act"] += clock() - t0
            next_obs, reward, terminated, truncated, info = self._step(self._env_action(action_np))
            t1 = clock()
            seen = extras.pop("obs", None)  # the observation as the policy saw it (normalised)
            arrays["obs"][t] = self.obs if seen is None else seen.numpy()
            arrays["action"][t] = action_np
            arrays["reward"][t] = reward
            arrays["terminated"][t] = terminated
            arrays["truncated"][t] = truncated
            arrays["first"][t] = self.first
            for k, v in extras.items():
                arrays[k][t] = v.numpy()
            cut = truncated & ~terminated
            if cut.any():
                for i in np.flatnonzero(cut):
                    storage.add_final(t, int(i), as_obs_tensor(info["final_obs"][i]))
            self.obs = next_obs
            self.timings["store"] += clock() - t1
            self._after_step(terminated | truncated, reward, info)
        return make_rollout(
            storage,
            as_obs_tensor(self.obs),
            initial_state,
            self.round,
            self.total_rounds,
            self.env_steps,
        )

    @torch.no_grad()
    def _replay_round(self, schedule: ReplaySchedule) -> ReplayBatches:
        storage, policy, clock = self.storage, self.policy, time.perf_counter
        steps_before = self.env_steps
        # a storage that takes the policy's extras (sequence replay: the recurrent state acted from)
        # gets them at every step; its policy acts also before learning starts (exploring fully)
        takes_extras = bool(getattr(storage, "takes_extras", False))
        extras: dict[str, Any] = {}
        for _ in range(self.vector_steps):
            t0 = clock()
            obs = self.obs
            assert obs is not None
            if self.env_steps < schedule.learning_starts_env_steps and not takes_extras:
                action = self._random_actions()
            else:
                act, extras, self.state = policy.act(as_obs_tensor(obs), self.state, True, self.env_steps)
                action = act.numpy()
            self.timings["act"] += clock() - t0
            next_obs, reward, terminated, truncated, info = self._step(self._env_action(action))
            t1 = clock()
            done = terminated | truncated
            real_next = next_obs
            if done.any():
                real_next = next_obs.copy()
                for i in np.flatnonzero(done):
                    real_next[i] = info["final_obs"][i]
            more = {"extras": extras} if takes_extras else {}
            storage.add(
                obs,
                action,
                reward,
                real_next,
                terminated,
                truncated,
                frames_continue=info.get("life_loss"),
                **more,
            )
            self.obs = next_obs
            self.timings["store"] += clock() - t1
            self._after_step(done, reward, info)
            if self.episodes_done():
                break
        count = 0
        if self.env_steps >= schedule.learning_starts_env_steps:
            self.grad_credit += (self.env_steps - steps_before) * schedule.gradient_steps_per_env_step
            count = int(self.grad_credit)
            self.grad_credit -= count
        progress = getattr(storage, "set_progress", None)
        if progress is not None:
            progress(min(1.0, self.env_steps / max(1, self.total_rounds * self.env_steps_per_round)))
        return ReplayBatches(
            storage, count, schedule.batch_size, self.env_steps, self.round, self.total_rounds
        )

    # -- checkpointing ------------------------------------------------------------------------
    def counters(self) -> dict[str, Any]:
        return {
            "env_steps": self.env_steps,
            "round": self.round,
            "total_rounds": self.total_rounds,
            "episodes": self.tracker.episodes,
            "grad_credit": self.grad_credit,
        }

    def load_counters(self, counters: dict[str, Any]) -> None:
        self.env_steps = int(counters["env_steps"])
        self.round = int(counters["round"])
        self.total_rounds = int(counters["total_rounds"])
        self.tracker.episodes = int(counters.get("episodes", 0))
        self.grad_credit = float(counters.get("grad_credit", 0.0))
