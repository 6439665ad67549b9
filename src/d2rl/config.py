"""Structured config schemas, stored in Hydra's ConfigStore and validated at compose time.

Algorithm and network schemas come from the registry (entry points); this module holds the
schemas shared by every run: trainer, env, logger, replay, distributed, and the root config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class EnvConfig:
    """A gymnasium environment, vectorised."""

    id: str = MISSING  # any registered gymnasium id, e.g. CartPole-v1
    suite: str = "gym"  # which env builder (entry point group d2rl.envs) makes it
    num_envs: int = 4
    vectorization: str = "sync"  # sync | async (subprocesses)
    max_episode_steps: int | None = None  # None keeps the env's own TimeLimit
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to gymnasium.make


@dataclass
class TrainerConfig:
    total_env_steps: int = 100_000
    eval_period_env_steps: int = 25_000  # 0 disables periodic evaluation
    eval_episodes: int = 10
    final_eval_episodes: int = 10
    eval_deterministic: bool = True
    checkpoint_period_env_steps: int = 25_000  # 0: only the final checkpoint
    torch_threads: int = 1  # measured: 1 thread is fastest for small MLPs on 2 cores
    accelerator: str = "cpu"
    progress_bar: bool = True
    log_period_env_steps: int = 2_048
    total_episodes: int | None = None  # also stop after this many finished episodes (None: env steps only)
    eval_video_period_env_steps: int = 0  # record an eval episode to <run>/videos and TensorBoard; 0: never
    total_learner_updates: int = 0  # > 0: also stop at this many learner updates (apex, seed)
    keep_checkpoints: int = 0  # keep the newest K step_*.pt (plus best.pt and last.pt); 0 keeps all
    nan_policy: str = "stop"  # stop | skip: on a NaN/inf loss or parameter, stop or undo the update
    deterministic: bool = False  # torch.use_deterministic_algorithms(True): bit-exact runs and resumes on CPU


@dataclass
class LoggerConfig:
    tensorboard: bool = True
    csv: bool = True
    learning_curve: bool = True
    wandb: bool = False  # Weights & Biases (pip install 'd2rl[wandb]'); WANDB_MODE=offline works without network
    wandb_project: str = "d2rl"


@dataclass
class ReplayConfig:
    """Replay storage; `none` for on-policy algorithms, which keep a rollout buffer.

    Off-policy algorithms read this group (`replay=uniform|prioritized`); with `none` they use a
    uniform buffer with these defaults.
    """

    kind: str = "none"  # none | uniform | prioritized
    capacity: int = 100_000  # transitions, over all envs
    dedup_frames: bool = True  # store stacked uint8 pixel obs [k, H, W] once per frame
    save_in_checkpoint: bool = True  # buffer contents (and priorities) go into checkpoints
    separate_file: bool = False  # ... into checkpoints/replay_<step>.pt beside step_<step>.pt
    # prioritized (Schaul et al. 2016, proportional variant)
    alpha: float = 0.6  # priority exponent
    beta_initial: float = 0.4  # importance-sampling exponent, annealed linearly ...
    beta_final: float = 1.0  # ... to this by the end of the run
    priority_eps: float = 1e-6  # added to |TD error|
    importance_weights: bool = True  # false: no IS correction (as some seeds run it)


@dataclass
class DistributedConfig:
    """How experience is gathered. `local`: one process, the debuggable serial path; `apex` and
    `seed`: the same Learner fed by Ray actors (d2rl.distributed; README "Distributed training")."""

    backend: str = "local"  # local | apex | seed
    # Ray: None joins RAY_ADDRESS if set, else starts a local instance (stopped at the end)
    address: str | None = None
    num_cpus: int | None = None  # size of a Ray instance d2rl starts (None: all cores)
    connect_timeout_s: float = 5.0  # an unreachable address fails after this
    num_actors: int = 2
    envs_per_actor: int | None = None  # None: env.num_envs
    num_replay_shards: int = 1
    actor_pull_period_env_steps: int = 64  # M: env steps (per actor) between weight pulls = one chunk
    publish_period_updates: int = 16  # K: learner updates between weight versions (one ray.put each)
    updates_per_learner_step: int = 32  # gradient steps per Trainer step (training_step)
    # schedule: the algorithm's updates per env step (as distributed=local); free: as fast as it can
    learner_pace: str = "schedule"
    # Ape-X exploration (Horgan et al. 2018): actor i of N acts with eps_i = base^(1 + alpha i / (N-1))
    epsilon_base: float = 0.4
    epsilon_alpha: float = 7.0
    # Ape-X SAC: actor i scales its policy noise by max * (min/max)^(i / (N-1))
    noise_scale_max: float = 1.0
    noise_scale_min: float = 0.3
    actor_max_restarts: int = 3  # Ray restarts a crashed actor this many times
    actor_restart_timeout_s: float = 180.0  # give up on an actor that stays unavailable this long
    # Ray task events of the actors' calls (Ray's state API, dashboard, timeline). Off: the
    # learner makes ~100 calls/s, and Ray's GCS kept a record of each, growing by ~43 MB/min
    # up to its cap of 100k tasks (measured with benchmarks/soak.py)
    ray_task_events: bool = False
    # resources per role (Ray logical resources; the learner runs in the driver: trainer.accelerator)
    actor_cpus: float = 0.5
    actor_gpus: float = 0.0
    actor_resources: dict[str, float] = field(default_factory=dict)  # custom, e.g. {node2: 0.01}
    replay_cpus: float = 0.25
    replay_resources: dict[str, float] = field(default_factory=dict)
    inference_cpus: float = 0.5
    inference_gpus: float = 0.0
    inference_resources: dict[str, float] = field(default_factory=dict)
    # SEED inference: a batch goes once it holds this many envs' observations (0: all envs) or
    # once its oldest request waited inference_timeout_ms
    inference_batch_size: int = 0
    inference_timeout_ms: float = 3.0


@dataclass
class TrainConfig:
    algo: Any = MISSING
    env: EnvConfig = MISSING
    network: Any = MISSING
    replay: ReplayConfig = MISSING
    distributed: DistributedConfig = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = 1
    output_dir: str | None = None  # None: Hydra's run dir (outputs/<date>/<time>)
    resume: str | None = None  # a run dir or checkpoint: continue that run to its total steps
    load_from: str | None = None  # a checkpoint: initialise weights only, then train anew


@dataclass
class GradCAMConfig:
    """Grad-CAM saliency of a pixel agent (d2rl/gradcam.py)."""

    enabled: bool = False
    layers: list[str] = field(default_factory=list)  # conv layer names; empty: the last conv layer
    pngs: int = 4  # evenly spaced frames also written as PNG
    alpha: float = 0.5  # overlay strength
    action_index: int | None = None  # Box actions: explain this component (None: their sum)


@dataclass
class EvalConfig:
    checkpoint: str = MISSING  # a run dir or a checkpoint file
    episodes: int = 10
    deterministic: bool = True
    video: bool = False
    video_dir: str | None = None  # default: <run dir>/videos (Grad-CAM: <run dir>/gradcam)
    video_view: str = "render"  # render: the full-resolution RGB render; network: what the network sees
    render: bool = False  # test mode: show the episodes in a window (says so when there is no display)
    gradcam: GradCAMConfig = field(default_factory=GradCAMConfig)  # `gradcam=true` sets gradcam.enabled
    seed: int = 12345
    num_envs: int | None = None  # default: min(episodes, 16)


def register_configs() -> None:
    """Store the schemas; YAML files in conf/ pick defaults on top of them."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="eval_schema", node=EvalConfig)
    cs.store(group="replay", name="none", node=ReplayConfig(kind="none"))
    cs.store(group="distributed", name="local", node=DistributedConfig(backend="local"))
