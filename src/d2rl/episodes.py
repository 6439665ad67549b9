"""Episode statistics for logging: ``train/episode_return`` and ``train/episode_length``."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class EpisodeTracker:
    """Finished episodes (return, length) and the running learner episodes of ``num_envs`` envs.

    ``episode_stats=True`` (the suite declares ``EnvFacts.episode_stats``): episodes are counted and
    reported only from ``info["episode"]`` (``{"r": [N], "l": [N]}`` with mask ``info["_episode"]``,
    gymnasium's RecordEpisodeStatistics layout), i.e. whole games with unclipped rewards; a learner
    episode ending at a life loss is no episode. ``episode_stats=False``: an episode ends at
    ``terminated | truncated`` with the sum of the raw rewards passed in.
    ``returns`` and ``lengths`` always follow the learner episodes (``lengths == 0``: one just began).
    """

    num_envs: int
    episode_stats: bool = False
    window: int = 20
    returns: np.ndarray = field(init=False)
    lengths: np.ndarray = field(init=False)
    finished: list[tuple[float, int]] = field(default_factory=list)  # since the last drain
    recent: deque[float] = field(init=False)
    episodes: int = 0

    def __post_init__(self) -> None:
        self.returns = np.zeros(self.num_envs, dtype=np.float64)
        self.lengths = np.zeros(self.num_envs, dtype=np.int64)
        self.recent = deque(maxlen=self.window)

    def _finish(self, ret: float, length: int) -> None:
        self.finished.append((ret, length))
        self.recent.append(ret)
        self.episodes += 1

    def step(self, reward: np.ndarray, done: np.ndarray, info: dict[str, Any] | None = None) -> None:
        """One vector step: ``reward [N]`` as the learner sees it, ``done [N]`` = terminated | truncated."""
        self.returns += reward
        self.lengths += 1
        if self.episode_stats:
            if info is not None and "episode" in info:
                ep = info["episode"]
                for i in np.flatnonzero(np.asarray(info["_episode"], dtype=bool)):
                    self._finish(float(ep["r"][i]), int(ep["l"][i]))
        else:
            for i in np.flatnonzero(done):
                self._finish(float(self.returns[i]), int(self.lengths[i]))
        if done.any():
            self.returns[done] = 0.0
            self.lengths[done] = 0

    def drain(self) -> list[tuple[float, int]]:
        out, self.finished = self.finished, []
        return out

    def recent_mean(self) -> float | None:
        return float(np.mean(self.recent)) if self.recent else None
