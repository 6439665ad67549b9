"""Uniform experience replay (Lin 1992; Mnih et al. 2015) with n-step returns and frame dedup.

Storage is a ring of ``rows_per_env`` rows for each of ``N`` envs (``[R, N, ...]``, numpy,
preallocated). A row holds an observation and, if it starts a transition, the action, reward and
episode flags of that step; the next observation is the next row of the same env. When an episode
ends, its real final observation (``info["final_obs"]``) gets its own row, which starts no
transition, and the next episode begins on the row after it. So a truncated episode bootstraps
from its true last observation and no reset step ever appears inside a transition.

Each row carries a ``stamp`` (a per-env running row counter), which tells whether a neighbouring
row still belongs to the same stretch of writing; n-step look-ahead and frame-stack look-back stop
or reject where the ring has overwritten a neighbour.

Pixel observations stacked on axis 0 (gymnasium's ``FrameStackObservation``, which pads an
episode's first stacks with the reset frame, or native vector envs that pad with zeros; the
padding is checked at every start of a stack chain) are stored once per frame: ``frame_stack=k``
keeps only the newest frame (the last ``C // k`` channels) of each row and rebuilds the stack from
the ``k-1`` previous rows of the same chain when sampling.

A chain of stacks is usually one episode, but a learner episode that ends at a life loss while the
game goes on (``add(..., frames_continue=...)``) leaves the env's frame stack running: its final
obs is the next episode's first obs, stored once, and look-back runs across that boundary. n-step
returns still stop there (the step is terminal for bootstrapping).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class ReplayBuffer:
    """Ring buffer of transitions from ``num_envs`` envs, sampled uniformly.

    ``sample`` returns ``obs [B, *obs]``, ``action [B, *act]``, ``reward [B]`` (the n-step
    discounted sum), ``next_obs [B, *obs]`` (the obs ``m <= n_step`` steps later), ``terminated
    [B]`` (float, 1 if the episode terminated within those steps) and ``discount [B]``
    (``gamma ** m``, the factor of the bootstrap value), plus ``indices [B]`` (flat row ids).
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype | type,
        action_shape: tuple[int, ...] = (),
        action_dtype: np.dtype | type = np.int64,
        n_step: int = 1,
        gamma: float = 0.99,
        frame_stack: int = 1,
        seed: int | None = None,
    ) -> None:
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        if frame_stack > 1 and (len(obs_shape) < 2 or obs_shape[0] % frame_stack):
            raise ValueError(
                f"frame_stack={frame_stack} needs obs of shape [{frame_stack} * C, ...], got {obs_shape}"
            )
        self.num_envs = N = num_envs
        self.rows = R = max(2 + n_step + frame_stack, -(-capacity // num_envs))
        self.obs_shape = tuple(obs_shape)
        self.frame_stack = frame_stack
        self.channels = obs_shape[0] // frame_stack if frame_stack > 1 else 0  # per frame
        self.n_step, self.gamma = n_step, gamma
        frame_shape = self.obs_shape
        if frame_stack > 1:  # one frame per row: [C', H, W], or [H, W] for one channel
            frame_shape = self.obs_shape[1:] if self.channels == 1 else (self.channels, *obs_shape[1:])
        self.obs = np.zeros((R, N, *frame_shape), dtype=obs_dtype)
        self.action = np.zeros((R, N, *action_shape), dtype=action_dtype)
        self.reward = np.zeros((R, N), dtype=np.float32)
        self.terminated = np.zeros((R, N), dtype=bool)
        self.truncated = np.zeros((R, N), dtype=bool)
        self.valid = np.zeros((R, N), dtype=bool)  # row starts a transition
        self.since_start = np.zeros((R, N), dtype=np.int32)  # steps since the stack chain's first obs
        self.stamp = np.full((R, N), -1, dtype=np.int64)
        self.head = np.zeros(N, dtype=np.int64)  # row of each env's current obs
        self.next_stamp = np.zeros(N, dtype=np.int64)  # stamp of the row at head
        self.episode_step = np.zeros(N, dtype=np.int32)  # steps into the current stack chain
        self.filled = np.zeros(N, dtype=np.int64)  # rows ever written, capped at R
        self.rng = np.random.default_rng(seed)
        self._envs = np.arange(N)
        self.size = 0  # stored transitions (valid rows)
        self.zero_padding: bool | None = None  # frame stacks padded with zeros (None: not seen yet)

    # -- writing ------------------------------------------------------------------------------
    def _frame(self, obs: np.ndarray) -> np.ndarray:
        if self.frame_stack == 1:
            return obs
        return obs[:, -1] if self.channels == 1 else obs[:, -self.channels :]

    def _check_padding(self, obs: np.ndarray) -> None:
        """A stack at a chain start must be padded by the reset frame (gymnasium's default)
        or by zeros (as some native vector envs do); anything else cannot be rebuilt from frames."""
        starts = obs[self.episode_step == 0]
        if starts.shape[0] == 0:
            return
        starts = starts.reshape(starts.shape[0], self.frame_stack, -1)  # [n, k, frame]
        older, newest = starts[:, :-1], starts[:, -1:]
        if self.zero_padding is not True and np.array_equal(older, np.broadcast_to(newest, older.shape)):
            if not (newest == 0).all():
                self.zero_padding = False
            return
        if self.zero_padding is not False and not older.any():
            self.zero_padding = True
            return
        raise ValueError(
            "frame-stacked observations at an episode start are padded neither by the reset frame nor "
            "by zeros; store whole stacks with replay.dedup_frames=false"
        )

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        frames_continue: np.ndarray | None = None,
    ) -> np.ndarray:
        """One vector step of all ``N`` envs. ``next_obs`` must be the real next observation
        (``info["final_obs"]`` where the episode ended). ``frames_continue [N]`` (bool) marks
        episode ends after which the env's frame stack runs on (a life loss in a running game):
        there the final obs must also be the next episode's first obs. Returns the flat ids of
        the new transitions."""
        envs, R, N = self._envs, self.rows, self.num_envs
        r = self.head
        r1 = (r + 1) % R
        self.size += N - int(self.valid[r, envs].sum()) - int(self.valid[r1, envs].sum())
        if self.frame_stack > 1:
            self._check_padding(obs)
        self.obs[r, envs] = self._frame(obs)
        self.action[r, envs] = action
        self.reward[r, envs] = reward
        self.terminated[r, envs] = terminated
        self.truncated[r, envs] = truncated
        self.valid[r, envs] = True
        self.since_start[r, envs] = self.episode_step
        self.stamp[r, envs] = self.next_stamp
        self.obs[r1, envs] = self._frame(next_obs)
        self.valid[r1, envs] = False
        self.since_start[r1, envs] = self.episode_step + 1
        self.stamp[r1, envs] = self.next_stamp + 1
        done = np.logical_or(terminated, truncated)
        if frames_continue is not None:  # the final-obs row also starts the next episode
            done = done & ~np.asarray(frames_continue, dtype=bool)
        step = 1 + done.astype(np.int64)  # an ended chain keeps its final-obs row
        self.filled = np.minimum(self.next_stamp + 2, R)  # rows written so far (before the wrap)
        self.head = (r + step) % R
        self.next_stamp += step
        self.episode_step = np.where(done, 0, self.episode_step + 1).astype(np.int32)
        return r * self.num_envs + envs

    def cut_episodes(self) -> None:
        """End every running episode as truncated at its last stored step.

        Called when collection restarts from fresh env resets (e.g. on resume), so no n-step
        return or frame stack runs from the old episode into the new one.
        """
        envs, R = self._envs, self.rows
        running = self.episode_step > 0
        last = (self.head - 1) % R
        self.truncated[last[running], envs[running]] = True
        self.head = np.where(running, (self.head + 1) % R, self.head)
        self.next_stamp = np.where(running, self.next_stamp + 1, self.next_stamp)
        self.episode_step[:] = 0

    def __len__(self) -> int:
        """Number of stored transitions."""
        return self.size

    @property
    def nbytes(self) -> int:
        arrays = (self.obs, self.action, self.reward, self.terminated, self.truncated, self.valid)
        return sum(a.nbytes for a in (*arrays, self.since_start, self.stamp))

    # -- reading ------------------------------------------------------------------------------
    def _stack(self, rows: np.ndarray, envs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Observations at ``rows`` (``[B, *obs]``) and whether their look-back rows are intact."""
        if self.frame_stack == 1:
            return self.obs[rows, envs], np.ones(rows.shape, dtype=bool)
        k, R = self.frame_stack, self.rows
        since = self.since_start[rows, envs]
        stamp = self.stamp[rows, envs]
        frames, ok = [], np.ones(rows.shape, dtype=bool)
        for back in range(k - 1, -1, -1):
            b = np.minimum(back, since)  # the reset frame repeats before the episode start
            prev = (rows - b) % R
            ok &= self.stamp[prev, envs] == stamp - b
            frame = self.obs[prev, envs]
            if self.zero_padding and back > 0:
                frame[since < back] = 0
            frames.append(frame)
        stacked = np.stack(frames, axis=1) if self.channels == 1 else np.concatenate(frames, axis=1)
        return stacked, ok

    def _usable(self, rows: np.ndarray, envs: np.ndarray) -> np.ndarray:
        ok = self.valid[rows, envs]
        if self.frame_stack > 1:  # a row whose older frames were overwritten cannot be rebuilt
            since = np.minimum(self.since_start[rows, envs], self.frame_stack - 1)
            prev = (rows - since) % self.rows
            ok &= self.stamp[prev, envs] == self.stamp[rows, envs] - since
        return ok

    def sample_ids(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Uniform over stored transitions (rejection of non-transition rows); ``(rows, envs)``."""
        if len(self) == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        rows = np.empty(batch_size, dtype=np.int64)
        envs = np.empty(batch_size, dtype=np.int64)
        todo = np.arange(batch_size)
        for _ in range(1000):
            e = self.rng.integers(0, self.num_envs, todo.size)
            r = (self.rng.random(todo.size) * self.filled[e]).astype(np.int64)
            ok = self._usable(r, e)
            rows[todo[ok]], envs[todo[ok]] = r[ok], e[ok]
            todo = todo[~ok]
            if todo.size == 0:
                return rows, envs
        raise RuntimeError("replay sampling found no usable transition in 1000 tries")

    def gather(self, rows: np.ndarray, envs: np.ndarray) -> dict[str, torch.Tensor]:
        """The n-step transitions starting at ``(rows, envs)``."""
        R, gamma = self.rows, self.gamma
        B = rows.shape[0]
        if self.n_step == 1:  # fast path: the next row holds next_obs
            return self._batch(
                rows,
                envs,
                self.reward[rows, envs],
                (rows + 1) % R,
                self.terminated[rows, envs],
                np.full(B, gamma, dtype=np.float32),
            )
        ret = np.zeros(B, dtype=np.float32)
        discount = np.ones(B, dtype=np.float32)
        alive = np.ones(B, dtype=bool)  # still accumulating
        terminated = np.zeros(B, dtype=bool)
        end = rows.copy()  # row of the bootstrap observation
        stamp0 = self.stamp[rows, envs]
        for j in range(self.n_step):
            r = (rows + j) % R
            ret += np.where(alive, discount * self.reward[r, envs], 0.0).astype(np.float32)
            discount = np.where(alive, discount * gamma, discount).astype(np.float32)
            end = np.where(alive, (r + 1) % R, end)
            term, trunc = self.terminated[r, envs], self.truncated[r, envs]
            terminated |= alive & term
            alive &= ~(term | trunc)
            # continue only into a transition row written right after this one
            nxt = (r + 1) % R
            alive &= self.valid[nxt, envs] & (self.stamp[nxt, envs] == stamp0 + j + 1)
        return self._batch(rows, envs, ret, end, terminated, discount)

    def _batch(
        self,
        rows: np.ndarray,
        envs: np.ndarray,
        ret: np.ndarray,
        end: np.ndarray,
        terminated: np.ndarray,
        discount: np.ndarray,
    ) -> dict[str, torch.Tensor]:
        obs, _ = self._stack(rows, envs)
        next_obs, _ = self._stack(end, envs)
        return {
            "obs": torch.from_numpy(obs),
            "action": torch.from_numpy(self.action[rows, envs]),
            "reward": torch.from_numpy(ret),
            "next_obs": torch.from_numpy(next_obs),
            "terminated": torch.from_numpy(terminated.astype(np.float32)),
            "discount": torch.from_numpy(discount),
            "indices": torch.from_numpy(rows * self.num_envs + envs),
        }

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        rows, envs = self.sample_ids(batch_size)
        return self.gather(rows, envs)

    # -- checkpointing ------------------------------------------------------------------------
    _ARRAYS = (
        "obs",
        "action",
        "reward",
        "terminated",
        "truncated",
        "valid",
        "since_start",
        "stamp",
        "head",
        "next_stamp",
        "episode_step",
        "filled",
    )

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The state as numpy arrays that are the buffer's own (no copy): for a caller that
        serializes them before the buffer changes (a Ray actor's return value, which Ray copies
        into its object store without the intermediate copies a tensor's pickling makes)."""
        state = {name: getattr(self, name) for name in self._ARRAYS}
        state["zero_padding"] = np.array(-1 if self.zero_padding is None else int(self.zero_padding))
        return state

    def state_dict(self) -> dict[str, Any]:
        """Tensors only (loadable with ``torch.load(weights_only=True)``)."""
        return {name: torch.from_numpy(np.array(a)) for name, a in self.state_arrays().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self._ARRAYS:
            current = getattr(self, name)
            value = state[name].numpy()
            if value.shape != current.shape:
                raise ValueError(f"replay '{name}' has shape {value.shape}, this buffer {current.shape}")
            current[...] = value
        self.size = int(self.valid.sum())
        padding = int(state.get("zero_padding", -1))
        self.zero_padding = None if padding < 0 else bool(padding)
