"""``train(cfg)``: the one place that reads the whole config and builds a run.

Builds envs -> the algorithm's Learner (holding its Policy), Storage and schedule -> the Loop
chosen by ``distributed=`` -> a Lightning Trainer fed by the Loop; then evaluates and writes
the run folder. Components get typed arguments; only this module and ``build_*`` read the config.
"""

from __future__ import annotations

import logging
import signal
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from d2rl import checkpoint
from d2rl.callbacks import (
    CheckpointCallback,
    EvalCallback,
    MetricsCallback,
    ProgressBar,
    UpdateTimer,
    summarize_returns,
)
from d2rl.config import ReplayConfig
from d2rl.core import BuildContext, Built, StopTraining, clear_stop, request_stop
from d2rl.envs import action_space_kind, env_facts, make_vec_env
from d2rl.errors import D2RLError
from d2rl.evaluation import evaluate
from d2rl.loops.local import LocalLoop
from d2rl.nan_guard import NonFiniteGuard
from d2rl.registry import get_algorithm, get_network
from d2rl.run_logger import RunLogger, start_wandb
from d2rl.summary import git_commit, package_versions, plot_learning_curve, write_summary
from d2rl.validation import validate

log = logging.getLogger(__name__)


def run_dir_of(cfg: DictConfig) -> Path:
    if cfg.get("output_dir"):
        return Path(cfg.output_dir)
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path("outputs") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S")


def as_dataclass(config_class: type, node: Any) -> Any:
    """A config node (typed, or plain as read back from a checkpoint) -> its dataclass instance."""
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(config_class), node))


def build_algorithm(cfg: DictConfig, envs: Any, seed: int) -> tuple[Built, BuildContext]:
    """Algorithm + network from the registry, checked against what the env gives."""
    spec = get_algorithm(cfg.algo.name)
    facts = env_facts(envs)
    kind = action_space_kind(envs.single_action_space)
    if kind not in spec.action_spaces:
        raise D2RLError(
            f"algorithm '{spec.name}' supports {', '.join(spec.action_spaces)} actions, but env "
            f"'{cfg.env.id}' has a {kind} action space ({envs.single_action_space}); pick another algo or env"
        )
    obs_kind = "pixels" if facts.pixels else "vector"
    shape = tuple(envs.single_observation_space.shape or ())
    if obs_kind not in spec.observations:
        raise D2RLError(
            f"algorithm '{spec.name}' learns from {' or '.join(spec.observations)} observations, but env "
            f"'{cfg.env.id}' gives {obs_kind} {shape}; pick another algo or env"
        )
    network = get_network(cfg.network.name)
    if obs_kind not in network.accepts:
        hint = (
            "network=nature_cnn, network=impala_resnet or network=resnet" if facts.pixels else "network=mlp"
        )
        raise D2RLError(
            f"network={network.name} takes {' or '.join(network.accepts)} observations, but env "
            f"'{cfg.env.id}' gives {obs_kind} {shape}; pick {hint}"
        )
    core = getattr(cfg.network, "core", "none")
    core = str(getattr(core, "value", core))
    if core != "none" and not getattr(spec, "recurrent", False):
        raise D2RLError(
            f"algorithm '{spec.name}' has no recurrent policy, so network.core={core} cannot be used; "
            "drop network.core or pick a recurrent algorithm"
        )
    ctx = BuildContext(
        observation_space=envs.single_observation_space,
        action_space=envs.single_action_space,
        num_envs=envs.num_envs,
        facts=facts,
        network=network,
        network_cfg=as_dataclass(network.config_class, cfg.network),
        replay_cfg=as_dataclass(ReplayConfig, cfg.replay),
        total_env_steps=int(cfg.trainer.total_env_steps),
        seed=seed,
    )
    return spec.build(as_dataclass(spec.config_class, cfg.algo), ctx), ctx


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*train_dataloader.*")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def make_run_logger(cfg: DictConfig, run_dir: Path, resume_step: int | None) -> RunLogger:
    """The run's logger (TensorBoard, metrics.csv, W&B when ``logger.wandb``), local or distributed."""
    wandb_run = None
    if cfg.logger.get("wandb"):
        config = OmegaConf.to_container(cfg, resolve=True)
        wandb_run = start_wandb(run_dir, config, str(cfg.logger.wandb_project), resume_step is not None)  # type: ignore[arg-type]
    return RunLogger(run_dir, cfg.logger.tensorboard, cfg.logger.csv, resume_step=resume_step, wandb_run=wandb_run)


def run_callbacks(
    cfg: DictConfig,
    loop: Any,
    run_logger: RunLogger,
    run_dir: Path,
    make_state: Callable[[L.Trainer], dict[str, Any]],
    seed: int,
    resume_state: dict[str, Any] | None,
    extra_metrics: Sequence[L.Callback] = (),
) -> tuple[list[L.Callback], CheckpointCallback]:
    """The callbacks every run has, local or distributed, in order: the NaN guard (before the
    checkpoint, so a diverged update is never saved), the update timer, metrics (+ ``extra_metrics``),
    periodic evaluation, checkpoints with retention and best.pt, and the evaluation video."""
    tcfg = cfg.trainer
    eval_cb = EvalCallback(
        run_logger,
        loop,
        cfg.env,
        int(tcfg.eval_period_env_steps),
        int(tcfg.eval_episodes),
        seed + 10_000,
        bool(tcfg.eval_deterministic),
    )
    ckpt_cb = CheckpointCallback(
        loop,
        run_dir / "checkpoints",
        int(tcfg.checkpoint_period_env_steps),
        make_state,
        keep=int(tcfg.get("keep_checkpoints", 0)),
        evaluator=eval_cb,
        separate_storage=bool((cfg.get("replay") or {}).get("separate_file", False)),
    )
    if resume_state is not None:
        ckpt_cb.best_return = resume_state["loop"].get("best_return")
    cbs: list[L.Callback] = [
        NonFiniteGuard(loop, str(tcfg.get("nan_policy", "stop"))),
        UpdateTimer(loop),  # its start/end hooks bracket training_step alone
        MetricsCallback(run_logger, loop, int(tcfg.log_period_env_steps)),
        *extra_metrics,
        eval_cb,
        ckpt_cb,
    ]
    if int(tcfg.get("eval_video_period_env_steps", 0)) > 0:
        from d2rl.eval_video import EvalVideoCallback

        cbs.append(
            EvalVideoCallback(
                run_logger,
                loop,
                cfg.env,
                int(tcfg.eval_video_period_env_steps),
                run_dir / "videos",
                seed + 30_000,
                bool(tcfg.eval_deterministic),
            )
        )
    return cbs, ckpt_cb


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGINT/SIGTERM ask the run to stop at the next env step or minibatch (a second Ctrl-C
    stops at once)."""

    def handler(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGINT and _stop_requested[0]:
            raise KeyboardInterrupt
        _stop_requested[0] = True
        request_stop(name)

    _stop_requested = [False]
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for s in old:
            signal.signal(s, handler)
    except ValueError:  # not the main thread (e.g. a Ray worker): no handlers
        old = {}
    clear_stop()
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        clear_stop()


def train(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> dict[str, Any]:
    """Train, evaluate and write the run folder; returns the final metrics.

    ``cfg.resume`` continues the run in that folder from its last checkpoint, with its saved config.
    Raises ``StopTraining`` after writing a checkpoint when SIGINT/SIGTERM stopped the run.
    """
    t_start = time.time()
    resume_state: dict[str, Any] | None = None
    if cfg.get("resume"):
        ckpt_path = checkpoint.resolve(cfg.resume)
        resume_state = checkpoint.load(ckpt_path)
        resume_state["storage"] = checkpoint.load_storage(resume_state, ckpt_path)
        saved = OmegaConf.create(resume_state["config"])
        saved.trainer.progress_bar = cfg.trainer.progress_bar
        saved.output_dir = str(ckpt_path.parent.parent)
        saved.resume = str(ckpt_path)
        cfg = saved
    validate(cfg)  # ranges and relations: one line before anything is built or written
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume_state is None:
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    _quiet_lightning()
    torch.set_num_threads(int(cfg.trainer.torch_threads))
    if cfg.trainer.get("deterministic"):
        torch.use_deterministic_algorithms(True)
    seed = int(cfg.seed)
    L.seed_everything(seed, workers=True, verbose=False)
    envs = make_vec_env(cfg.env, seed)
    try:
        fit = _fit  # distributed=local; apex and seed: the Ray loops (d2rl.distributed)
        if str(cfg.distributed.get("backend", "local")) != "local":
            from d2rl.distributed import fit_distributed as fit
        return fit(cfg, envs, seed, run_dir, resume_state, callbacks, t_start)
    finally:
        envs.close()


def _fit(
    cfg: DictConfig,
    envs: Any,
    seed: int,
    run_dir: Path,
    resume_state: dict[str, Any] | None,
    callbacks: Sequence[L.Callback],
    t_start: float,
) -> dict[str, Any]:
    built, ctx = build_algorithm(cfg, envs, seed)
    learner, tcfg = built.learner, cfg.trainer
    total = int(tcfg.total_env_steps)
    episodes = tcfg.get("total_episodes")
    loop = LocalLoop(
        envs,
        built.policy,
        built.storage,
        built.schedule,
        total,
        seed,
        ctx.facts.episode_stats,
        total_episodes=None if episodes is None else int(episodes),
    )
    if resume_state is not None:
        learner.load_state_dict(resume_state["learner"])
        if resume_state.get("storage") and built.storage is not None:
            built.storage.load_state_dict(resume_state["storage"])
        loop.load_counters(resume_state["loop"])
        exact = _restore_loop_state(loop, envs, built.storage, resume_state)
        log.info(
            "resuming %s at env step %d (%s)",
            run_dir,
            loop.env_steps,
            "exactly: the envs continue their episodes" if exact else "the envs start fresh episodes",
        )
    elif cfg.get("load_from"):
        init = checkpoint.load(cfg.load_from)
        try:
            learner.load_state_dict(init["learner"])
        except (RuntimeError, KeyError) as e:
            raise D2RLError(
                f"load_from={cfg.load_from}: weights do not fit this algo/network/env ({e})"
            ) from e
    planned = loop.total_rounds * loop.env_steps_per_round
    if resume_state is None and planned != total:
        log.info(
            "trainer.total_env_steps=%d is rounded up to %d: %d learner steps of %d env steps each",
            total,
            planned,
            loop.total_rounds,
            loop.env_steps_per_round,
        )
    if loop.obs is None:  # a resumed run whose env state could not be saved restarts its envs
        loop.start(seed + 7919 * loop.round)  # from a seed derived from the round it resumes at

    resume_step = loop.env_steps if resume_state is not None else None
    run_logger = make_run_logger(cfg, run_dir, resume_step)
    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    save_storage = bool(getattr(ctx.replay_cfg, "save_in_checkpoint", True))

    def make_state(trainer: L.Trainer) -> dict[str, Any]:
        storage = built.storage
        return {
            "algo": cfg.algo.name,
            "config": config_yaml,
            "learner": learner.state_dict(),
            "policy": built.policy.state_dict(),
            "optimizers": [o.state_dict() for o in trainer.optimizers],
            "storage": storage.state_dict() if save_storage and storage is not None else {},
            "loop": {**loop.counters(), **_loop_state(loop, built.storage)},
            "env": checkpoint.env_state(envs) or {},
            "rng": checkpoint.rng_state(),
            "versions": package_versions(),
        }

    progress = ProgressBar(loop, total, bool(tcfg.progress_bar))
    run_cbs, ckpt_cb = run_callbacks(cfg, loop, run_logger, run_dir, make_state, seed, resume_state)
    all_callbacks: list[L.Callback] = [*run_cbs, progress]
    if resume_state is not None:
        all_callbacks.append(_RestoreOptimizers(resume_state["optimizers"], resume_state["rng"]))
    all_callbacks += callbacks
    trainer = L.Trainer(
        accelerator=str(tcfg.accelerator),
        devices=1,
        max_epochs=1,
        max_steps=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=all_callbacks,
        deterministic=False,
    )
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    t_fit = time.perf_counter()
    try:
        with _stop_on_signals():
            trainer.fit(learner, train_dataloaders=loop)
    except (StopTraining, SIGTERMException) as e:
        progress.close()
        path = ckpt_cb.save(trainer)
        run_logger.close()
        reason = str(e) or "SIGTERM"
        log.info("stopped by %s at env step %d; checkpoint %s", reason, loop.env_steps, path)
        raise StopTraining(reason) from e
    fit_s = time.perf_counter() - t_fit

    tcfg_eval = int(tcfg.final_eval_episodes)
    returns = evaluate(built.policy, cfg.env, tcfg_eval, seed + 20_000, bool(tcfg.eval_deterministic))
    final = summarize_returns(returns)
    run_logger.log({"eval/return_mean": final["mean"], "eval/return_std": final["std"]}, loop.env_steps)
    wall = time.time() - t_start
    steps_this_session = loop.env_steps - (resume_step or 0)
    summary: dict[str, Any] = {
        "algo": cfg.algo.name,
        "env": cfg.env.id,
        "network": cfg.network.name,
        "seed": seed,
        "env_steps": loop.env_steps,
        "learner_steps": loop.round,
        "episodes": loop.tracker.episodes,
        "final_eval": {**final, "episodes": len(returns), "deterministic": bool(tcfg.eval_deterministic)},
        "wall_time_s": round(wall, 3),
        "fit_time_s": round(fit_s, 3),
        "env_steps_per_s": round(steps_this_session / max(fit_s, 1e-9), 1),
        "timings_s": {k: round(v, 3) for k, v in loop.timings.items()},
        "resumed_from": str(cfg.resume) if resume_state is not None else None,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "last_checkpoint": str(ckpt_cb.last_path) if ckpt_cb.last_path else None,
    }
    write_summary(run_dir, summary)
    if cfg.logger.learning_curve:
        curve = plot_learning_curve(
            run_logger, run_dir / "learning_curve.png", f"{cfg.algo.name} on {cfg.env.id}"
        )
        run_logger.log_image("learning_curve", curve)
    run_logger.close()
    log.info(
        "final eval return %.2f +- %.2f over %d episodes; %d env steps in %.1f s; run dir %s",
        final["mean"],
        final["std"],
        len(returns),
        loop.env_steps,
        wall,
        run_dir,
    )
    return {
        "eval/return_mean": final["mean"],
        "eval/return_std": final["std"],
        "env_steps": loop.env_steps,
        "wall_time_s": wall,
        "env_steps_per_s": summary["env_steps_per_s"],
        "run_dir": str(run_dir),
    }


class _RestoreOptimizers(L.Callback):
    """Load saved optimizer state once the Trainer has created the optimizers, and the RNG states
    last, right before the first round is collected (nothing between draws from them)."""

    def __init__(self, states: list[dict[str, Any]], rng: dict[str, Any]) -> None:
        self.states, self.rng = states, rng

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for opt, state in zip(trainer.optimizers, self.states, strict=True):
            opt.load_state_dict(state)
        checkpoint.set_rng_state(self.rng)


def _tensor(x: Any) -> Any:
    return None if x is None else torch.from_numpy(np.array(x, copy=True))


def _tensor_tree(x: Any) -> bool:
    if x is None or torch.is_tensor(x):
        return True
    if isinstance(x, (tuple, list)):
        return all(_tensor_tree(v) for v in x)
    return isinstance(x, dict) and all(isinstance(k, str) and _tensor_tree(v) for k, v in x.items())


def _loop_state(loop: Any, storage: Any) -> dict[str, Any]:
    """What an exact resume needs beyond the counters: the current observation, episode starts,
    recurrent state, episode bookkeeping and the numpy Generators of the Loop and the replay.
    A recurrent state that is not tensors in containers is not saved (fresh episodes on resume)."""
    state = getattr(loop, "state", None)
    tracker = getattr(loop, "tracker", None)
    if tracker is None or not hasattr(loop, "rng") or not _tensor_tree(state):
        return {}
    return {
        "obs": _tensor(getattr(loop, "obs", None)),
        "first": _tensor(getattr(loop, "first", None)),
        "policy_state": state,
        "tracker_returns": _tensor(tracker.returns),
        "tracker_lengths": _tensor(tracker.lengths),
        "loop_rng": checkpoint.generator_state(loop.rng),
        "storage_rng": checkpoint.generator_state(storage.rng) if hasattr(storage, "rng") else None,
    }


def _restore_loop_state(loop: LocalLoop, envs: Any, storage: Any, state: dict[str, Any]) -> bool:
    """Restore ``_loop_state`` and the envs; True if the envs continue exactly where they were."""
    saved = state["loop"]
    if saved.get("loop_rng"):
        checkpoint.set_generator_state(loop.rng, saved["loop_rng"])
    if saved.get("storage_rng") and hasattr(storage, "rng"):
        checkpoint.set_generator_state(storage.rng, saved["storage_rng"])
    if saved.get("tracker_returns") is not None:
        loop.tracker.returns[...] = saved["tracker_returns"].numpy()
        loop.tracker.lengths[...] = saved["tracker_lengths"].numpy()
    if saved.get("obs") is None or not checkpoint.set_env_state(envs, state.get("env")):
        return False
    loop.obs = saved["obs"].numpy().copy()
    loop.first = saved["first"].numpy().copy()
    loop.state = saved.get("policy_state")
    return True


def load_policy(state: dict[str, Any], seed: int = 0) -> tuple[Any, DictConfig]:
    """The Policy of a checkpoint (``checkpoint.load(...)``), built without training state:
    returns it (eval mode) and the run's config."""
    run_cfg = OmegaConf.create(state["config"])
    probe = make_vec_env(run_cfg.env, seed, num_envs=1)
    try:
        built, _ = build_algorithm(run_cfg, probe, seed)
    finally:
        probe.close()
    try:
        built.policy.load_state_dict(state["policy"])
    except (RuntimeError, KeyError) as e:
        raise D2RLError(f"the checkpoint's policy does not fit its own config ({str(e)[:200]})") from e
    return built.policy.eval(), run_cfg
