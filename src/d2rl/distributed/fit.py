"""``train()`` with ``distributed=apex|seed``: the Learner trains in this (driver) process under the
Lightning Trainer, fed by ``DistributedLoop``; the same callbacks, checkpoints, final evaluation
and run folder as ``distributed=local``."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from omegaconf import DictConfig, OmegaConf

from d2rl import checkpoint
from d2rl.callbacks import summarize_returns
from d2rl.core import StopTraining
from d2rl.distributed.loop import DistributedLoop
from d2rl.distributed.metrics import DistributedMetrics, DistributedProgressBar
from d2rl.distributed.session import ray_session
from d2rl.errors import D2RLError
from d2rl.evaluation import evaluate
from d2rl.summary import git_commit, package_versions, plot_learning_curve, write_summary

log = logging.getLogger(__name__)


class _RestoreOptimizers(L.Callback):
    def __init__(self, states: list[dict[str, Any]]) -> None:
        self.states = states

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for opt, state in zip(trainer.optimizers, self.states, strict=True):
            opt.load_state_dict(state)


def _with_cli_distributed_overrides(cfg: DictConfig) -> DictConfig:
    """A resumed run takes its saved config; ``distributed.*`` given on the command line (e.g. a
    different ``distributed.num_actors``) still apply, except the backend."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return cfg
    cfg = copy.deepcopy(cfg)
    for override in HydraConfig.get().overrides.task:
        key, _, value = override.lstrip("+").partition("=")
        if key.startswith("distributed.") and key != "distributed.backend":
            OmegaConf.update(cfg, key, yaml.safe_load(value) if value else None, force_add=True)
            log.info("resume: %s=%s from the command line", key, value)
    return cfg


def fit_distributed(
    cfg: DictConfig,
    envs: Any,
    seed: int,
    run_dir: Path,
    resume_state: dict[str, Any] | None,
    callbacks: Sequence[L.Callback],
    t_start: float,
) -> dict[str, Any]:
    """Same signature and result as ``d2rl.train._fit``."""
    from d2rl.train import _stop_on_signals, build_algorithm, make_run_logger, run_callbacks

    if resume_state is not None:
        cfg = _with_cli_distributed_overrides(cfg)
    backend = str(cfg.distributed.backend)
    if backend not in ("apex", "seed"):
        raise D2RLError(f"distributed.backend must be local, apex or seed, got '{backend}'")
    # the driver's own replay is never filled (the shards hold the data): build it small
    build_cfg = copy.deepcopy(cfg)
    build_cfg.replay.capacity = 64 * int(envs.num_envs)
    built, ctx = build_algorithm(build_cfg, envs, seed)
    learner, tcfg = built.learner, cfg.trainer
    loop = DistributedLoop(cfg, built, ctx, seed)
    if resume_state is not None:
        learner.load_state_dict(resume_state["learner"])
        loop.load_counters(resume_state["loop"])
        loop.saved_storage = (resume_state.get("storage") or {}).get("replay_slots")
        checkpoint.set_rng_state(resume_state["rng"])
        log.info("resuming %s at env step %d, learner update %d", run_dir, loop.env_steps, loop.updates)
    elif cfg.get("load_from"):
        try:
            learner.load_state_dict(checkpoint.load(cfg.load_from)["learner"])
        except (RuntimeError, KeyError) as e:
            raise D2RLError(f"load_from={cfg.load_from}: weights do not fit this algo/network/env ({e})") from e

    resume_step = loop.env_steps if resume_state is not None else None
    run_logger = make_run_logger(cfg, run_dir, resume_step)
    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    save_storage = bool(cfg.replay.get("save_in_checkpoint", True))

    def make_state(trainer: L.Trainer) -> dict[str, Any]:
        return {
            "algo": cfg.algo.name,
            "config": config_yaml,
            "learner": learner.state_dict(),
            "policy": built.policy.state_dict(),
            "optimizers": [o.state_dict() for o in trainer.optimizers],
            "storage": loop.storage_state() if save_storage else {},
            "loop": loop.counters(),
            "rng": checkpoint.rng_state(),
            "versions": package_versions(),
        }

    total = int(tcfg.total_env_steps)
    progress = DistributedProgressBar(loop, total, bool(tcfg.progress_bar))  # type: ignore[arg-type]
    # the same NaN guard, metrics, evaluation, checkpoint retention (keep_checkpoints, best.pt) and
    # evaluation video as a local run
    run_cbs, ckpt_cb = run_callbacks(
        cfg, loop, run_logger, run_dir, make_state, seed, resume_state,
        extra_metrics=[DistributedMetrics(run_logger, loop, int(tcfg.log_period_env_steps))],
    )
    all_callbacks: list[L.Callback] = [*run_cbs, progress]
    if resume_state is not None:
        all_callbacks.append(_RestoreOptimizers(resume_state["optimizers"]))
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
    with ray_session(cfg.distributed):
        try:
            with _stop_on_signals():
                loop.start()
                trainer.fit(learner, train_dataloaders=loop)
        except (StopTraining, SIGTERMException, KeyboardInterrupt) as e:
            progress.close()
            path = ckpt_cb.save(trainer)
            run_logger.close()
            reason = str(e) or type(e).__name__
            log.info("stopped by %s at env step %d; checkpoint %s", reason, loop.env_steps, path)
            raise StopTraining(reason) from e
        finally:
            loop.shutdown()
    fit_s = time.perf_counter() - t_fit

    returns = evaluate(built.policy, cfg.env, int(tcfg.final_eval_episodes), seed + 20_000,
                       bool(tcfg.eval_deterministic))
    final = summarize_returns(returns)
    run_logger.log({"eval/return_mean": final["mean"], "eval/return_std": final["std"]}, loop.env_steps)
    wall = time.time() - t_start
    steps_this_session = loop.env_steps - (resume_step or 0)
    summary: dict[str, Any] = {
        "algo": cfg.algo.name,
        "env": cfg.env.id,
        "network": cfg.network.name,
        "seed": seed,
        "distributed": backend,
        "num_actors": loop.num_actors,
        "env_steps": loop.env_steps,
        "learner_steps": loop.round,
        "learner_updates": loop.updates,
        "actor_restarts": loop.restarts,
        "actor_nodes": {str(k): v for k, v in sorted(loop.actor_nodes.items())},
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
        plot_learning_curve(run_logger, run_dir / "learning_curve.png", f"{cfg.algo.name} on {cfg.env.id} ({backend})")
    run_logger.close()
    log.info(
        "final eval return %.2f +- %.2f; %d env steps, %d learner updates, %d actor restarts in %.1f s; run dir %s",
        final["mean"], final["std"], loop.env_steps, loop.updates, loop.restarts, wall, run_dir,
    )
    return {
        "eval/return_mean": final["mean"],
        "eval/return_std": final["std"],
        "env_steps": loop.env_steps,
        "learner_updates": loop.updates,
        "actor_restarts": loop.restarts,
        "wall_time_s": wall,
        "env_steps_per_s": summary["env_steps_per_s"],
        "run_dir": str(run_dir),
    }
