"""``trainer.eval_video_period_env_steps``: record an evaluation episode during training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L

from d2rl.callbacks import PeriodicCallback
from d2rl.evaluation import record_video, render_fps
from d2rl.loops.local import LocalLoop
from d2rl.run_logger import RunLogger

# TensorBoard gets the first frames of each episode as an animated GIF; the mp4 has them all
TENSORBOARD_MAX_FRAMES = 300


class EvalVideoCallback(PeriodicCallback):
    """Every ``period`` env steps and at the end: one evaluation episode to
    ``<video_dir>/eval_step<env steps>.mp4``, shown in TensorBoard (``eval/video``) and W&B."""

    def __init__(
        self,
        run_logger: RunLogger,
        loop: LocalLoop,
        env_cfg: Any,
        period: int,
        video_dir: Path,
        seed: int,
        deterministic: bool,
    ) -> None:
        super().__init__(loop, period, at_end=True)
        self.logger, self.env_cfg, self.video_dir = run_logger, env_cfg, video_dir
        self.seed, self.deterministic = seed, deterministic
        self.paths: list[Path] = []

    def fire(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = self.loop.env_steps
        path, frames = record_video(
            self.loop.policy,
            self.env_cfg,
            self.video_dir,
            self.seed,
            self.deterministic,
            name=f"eval_step{step:012d}",
            keep_frames=TENSORBOARD_MAX_FRAMES,
        )
        self.paths.append(path)
        self.logger.log_video("eval/video", path, frames, render_fps(self.env_cfg), step)
