"""Transitional: the training path of algorithms still written as ``d2rl.agent.Agent`` (being ported to ``d2rl.core``)."""

from __future__ import annotations

import inspect
import logging
import time
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from d2rl import checkpoint
from d2rl.agent import Agent
from d2rl.envs import action_space_kind, env_facts, make_vec_env
from d2rl.errors import D2RLError
from d2rl.evaluation import evaluate
from d2rl.legacy_callbacks import (
    CheckpointCallback,
    EvalCallback,
    MetricsCallback,
    ProgressBar,
    summarize_returns,
)
from d2rl.registry import get_algorithm, get_network
from d2rl.run_logger import RunLogger
from d2rl.summary import git_commit, package_versions, plot_learning_curve, write_summary

log = logging.getLogger(__name__)


def run_dir_of(cfg: DictConfig) -> Path:
    if cfg.get("output_dir"):
        return Path(cfg.output_dir)
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path("outputs") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S")


def build_agent(cfg: DictConfig, envs: Any) -> Agent:
    """Algorithm + network from the registry, checked against the env's action space."""
    spec = get_algorithm(cfg.algo.name)
    kind = action_space_kind(envs.single_action_space)
    if kind not in spec.action_spaces:
        raise D2RLError(
            f"algorithm '{spec.name}' supports {', '.join(spec.action_spaces)} actions, but env "
            f"'{cfg.env.id}' has a {kind} action space ({envs.single_action_space}); pick another algo or env"
        )
    network = get_network(cfg.network.name)
    obs_space = envs.single_observation_space
    if cfg.network.name == "mlp" and obs_space.dtype == np.uint8 and len(obs_space.shape) == 3:
        raise D2RLError(
            f"env '{cfg.env.id}' gives images {tuple(obs_space.shape)} (uint8); pick a pixel network: "
            "network=nature_cnn, network=impala_resnet or network=resnet"
        )
    # off-policy agents (class attribute `uses_replay = True`) also get the `replay` config group
    extra = {"replay_cfg": cfg.replay} if getattr(spec.agent_class, "uses_replay", False) else {}
    agent_class: Any = spec.agent_class
    if "env_facts" in inspect.signature(agent_class.from_config).parameters:  # e.g. dqn's frame dedup
        extra["env_facts"] = env_facts(envs)
    return agent_class.from_config(
        cfg.algo,
        network,
        cfg.network,
        envs.single_observation_space,
        envs.single_action_space,
        envs.num_envs,
        int(cfg.trainer.total_env_steps),
        **extra,
    )


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*train_dataloader.*")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def train(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> dict[str, Any]:
    """Train, evaluate and write the run folder; returns the final metrics.

    ``cfg.resume`` continues the run in that folder from its last checkpoint, with its saved config.
    """
    t_start = time.time()
    resume_state: dict[str, Any] | None = None
    if cfg.get("resume"):
        ckpt_path = checkpoint.resolve(cfg.resume)
        resume_state = checkpoint.load(ckpt_path)
        saved = OmegaConf.create(resume_state["config"])
        saved.trainer.progress_bar = cfg.trainer.progress_bar
        saved.output_dir = str(ckpt_path.parent.parent)
        saved.resume = str(ckpt_path)
        cfg = saved
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume_state is None:
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    _quiet_lightning()
    torch.set_num_threads(int(cfg.trainer.torch_threads))
    seed = int(cfg.seed)
    L.seed_everything(seed, workers=True, verbose=False)

    envs = make_vec_env(cfg.env, seed)
    agent = build_agent(cfg, envs)
    trainer_cfg = cfg.trainer
    if resume_state is not None:
        agent.load_state_dict(resume_state["agent"])
        agent.load_counters(resume_state["counters"])
        checkpoint.set_rng_state(resume_state["rng"])
        log.info("resuming %s at env step %d", run_dir, agent.env_steps)
    elif cfg.get("load_from"):
        init = checkpoint.load(cfg.load_from)
        try:
            agent.load_state_dict(init["agent"])
        except RuntimeError as e:
            raise D2RLError(
                f"load_from={cfg.load_from}: weights do not fit this algo/network/env ({e})"
            ) from e
    # A resumed run restarts its envs from a seed derived from the iteration it resumes at.
    agent.attach(envs, seed + 7919 * agent.iteration)

    resume_step = agent.env_steps if resume_state is not None else None
    run_logger = RunLogger(run_dir, cfg.logger.tensorboard, cfg.logger.csv, resume_step=resume_step)
    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)

    def make_state(a: Agent, trainer: L.Trainer) -> dict[str, Any]:
        return {
            "algo": cfg.algo.name,
            "config": config_yaml,
            "agent": a.state_dict(),
            "optimizers": [o.state_dict() for o in trainer.optimizers],
            "counters": a.counters(),
            "rng": checkpoint.rng_state(),
            "versions": package_versions(),
        }

    ckpt_cb = CheckpointCallback(
        run_dir / "checkpoints", int(trainer_cfg.checkpoint_period_env_steps), make_state
    )
    eval_cb = EvalCallback(
        run_logger,
        cfg.env,
        int(trainer_cfg.eval_period_env_steps),
        int(trainer_cfg.eval_episodes),
        seed + 10_000,
        bool(trainer_cfg.eval_deterministic),
    )
    all_callbacks: list[L.Callback] = [
        MetricsCallback(run_logger, int(trainer_cfg.log_period_env_steps)),
        eval_cb,
        ckpt_cb,
        ProgressBar(int(trainer_cfg.total_env_steps), bool(trainer_cfg.progress_bar)),
    ]
    if resume_state is not None:
        all_callbacks.append(_RestoreOptimizers(resume_state["optimizers"]))
    all_callbacks += callbacks
    trainer = L.Trainer(
        accelerator=str(trainer_cfg.accelerator),
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
    t_fit = time.perf_counter()
    try:
        trainer.fit(agent, train_dataloaders=range(agent.iteration, agent.total_iterations))
    finally:
        envs.close()
    fit_s = time.perf_counter() - t_fit
    if trainer.interrupted:
        run_logger.close()
        raise KeyboardInterrupt

    returns = evaluate(
        agent,
        cfg.env,
        int(trainer_cfg.final_eval_episodes),
        seed + 20_000,
        bool(trainer_cfg.eval_deterministic),
    )
    final = summarize_returns(returns)
    run_logger.log({"eval/return_mean": final["mean"], "eval/return_std": final["std"]}, agent.env_steps)
    wall = time.time() - t_start
    steps_this_session = agent.env_steps - (resume_step or 0)
    summary: dict[str, Any] = {
        "algo": cfg.algo.name,
        "env": cfg.env.id,
        "network": cfg.network.name,
        "seed": seed,
        "env_steps": agent.env_steps,
        "iterations": agent.iteration,
        "episodes": agent.episodes_done(),
        "final_eval": {
            **final,
            "episodes": len(returns),
            "deterministic": bool(trainer_cfg.eval_deterministic),
        },
        "wall_time_s": round(wall, 3),
        "fit_time_s": round(fit_s, 3),
        "env_steps_per_s": round(steps_this_session / max(fit_s, 1e-9), 1),
        "timings_s": {k: round(v, 3) for k, v in agent.timings.items()},
        "resumed_from": str(cfg.resume) if resume_state is not None else None,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "last_checkpoint": str(ckpt_cb.last_path) if ckpt_cb.last_path else None,
    }
    write_summary(run_dir, summary)
    if cfg.logger.learning_curve:
        plot_learning_curve(run_logger, run_dir / "learning_curve.png", f"{cfg.algo.name} on {cfg.env.id}")
    run_logger.close()
    log.info(
        "final eval return %.2f +- %.2f over %d episodes; %d env steps in %.1f s; run dir %s",
        final["mean"],
        final["std"],
        len(returns),
        agent.env_steps,
        wall,
        run_dir,
    )
    return {
        "eval/return_mean": final["mean"],
        "eval/return_std": final["std"],
        "env_steps": agent.env_steps,
        "wall_time_s": wall,
        "env_steps_per_s": summary["env_steps_per_s"],
        "run_dir": str(run_dir),
    }


class _RestoreOptimizers(L.Callback):
    """Load saved optimizer state once the Trainer has created the optimizers."""

    def __init__(self, states: list[dict[str, Any]]) -> None:
        self.states = states

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for opt, state in zip(trainer.optimizers, self.states, strict=True):
            opt.load_state_dict(state)
