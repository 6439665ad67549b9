"""SAC on Pendulum-v1: d2rl vs stable-baselines3 with the same hyperparameters, in one run.

    python benchmarks/sac_pendulum.py --steps 20000 --seeds 1 2 3

Hyperparameters (rl-baselines3-zoo's Pendulum-v1 SAC: lr 1e-3, SB3 defaults otherwise): one env,
256-256 ReLU actor and twin critics, batch 256, gamma 0.99, tau 0.005, automatic temperature
(initial alpha 1, target entropy -1), 1000 uniform-random warm-up steps, then one gradient step per
env step; replay holds every transition. Both use 1 torch thread. Runs alternate d2rl / SB3 per
seed so both see the same machine load. Reports training wall-clock (final eval excluded),
env steps/s and the final deterministic eval return over 10 episodes.

``--update-only`` times just the gradient steps (sampling included), alternating SB3 and d2rl in
blocks of 50 within one process: the fairest figure on a machine shared with other jobs.

Differences that remain: d2rl collects 64 env steps (``algo.round_env_steps``), then does 64
gradient steps (SB3 alternates 1 and 1), and computes the critic, actor and temperature gradients in one backward pass (the actor
sees the critic before, not after, the same step's critic update).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

HP = dict(lr=1e-3, batch=256, gamma=0.99, tau=0.005, learning_starts=1000, buffer=1_000_000)


def eval_returns(policy, episodes: int = 10, seed: int = 20_000) -> float:  # type: ignore[no-untyped-def]
    envs = gym.make_vec(
        "Pendulum-v1",
        num_envs=episodes,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
    )
    obs, _ = envs.reset(seed=seed)
    ret, active = np.zeros(episodes), np.ones(episodes, bool)
    while active.any():
        obs, r, te, tr, _ = envs.step(policy(obs))
        ret += r * active
        active &= ~(te | tr)
    return float(ret.mean())


def run_d2rl(steps: int, seed: int, out: Path) -> dict[str, float]:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from d2rl.config import register_configs
    from d2rl.registry import register_config_nodes
    from d2rl.train import train

    register_configs()
    register_config_nodes()
    GlobalHydra.instance().clear()
    with initialize_config_module("d2rl.conf", version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "algo=sac",
                "env=pendulum",
                "~tuned",
                f"seed={seed}",
                f"output_dir={out}",
                f"trainer.total_env_steps={steps}",
                "trainer.progress_bar=false",
                "trainer.eval_period_env_steps=0",
                "trainer.checkpoint_period_env_steps=0",
                "trainer.final_eval_episodes=10",
                "logger.learning_curve=false",
                "trainer.torch_threads=1",
                "env.num_envs=1",
                f"replay.capacity={HP['buffer']}",
                "replay.save_in_checkpoint=false",
                f"algo.actor_lr={HP['lr']}",
                f"algo.critic_lr={HP['lr']}",
                f"algo.alpha_lr={HP['lr']}",
                f"algo.batch_size={HP['batch']}",
                f"algo.gamma={HP['gamma']}",
                f"algo.tau={HP['tau']}",
                f"algo.learning_starts_env_steps={HP['learning_starts']}",
                "algo.gradient_steps_per_env_step=1.0",
            ],
        )
    res = train(cfg)
    s = json.loads((out / "summary.json").read_text())
    fit, t = s["fit_time_s"], s["timings_s"]  # the Loop's env / act / store seconds
    collect = t["env"] + t["act"] + t["store"]
    return {
        "sps": s["env_steps"] / fit,
        "return": res["eval/return_mean"],
        "fit_s": fit,
        "collect_s": collect,
        "update_and_loop_s": fit - collect,  # gradient steps, sampling, Lightning and callbacks
    }


def run_sb3(steps: int, seed: int) -> dict[str, float]:
    from stable_baselines3 import SAC

    torch.set_num_threads(1)
    env = gym.make("Pendulum-v1")
    model = SAC(
        "MlpPolicy",
        env,
        learning_rate=HP["lr"],
        buffer_size=HP["buffer"],
        learning_starts=HP["learning_starts"],
        batch_size=HP["batch"],
        tau=HP["tau"],
        gamma=HP["gamma"],
        train_freq=1,
        gradient_steps=1,
        ent_coef="auto",
        seed=seed,
        device="cpu",
        verbose=0,
    )
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    dt = time.perf_counter() - t0
    return {
        "sps": model.num_timesteps / dt,
        "return": eval_returns(lambda o: model.predict(o, deterministic=True)[0]),
        "fit_s": dt,
    }


def update_cost(reps: int = 6, n: int = 50) -> dict[str, list[float]]:
    """Milliseconds per gradient step (batch 256, 256-256 nets), SB3's ``train(1)`` and d2rl's
    learner update alternating in one process, so both see the same machine load."""
    from stable_baselines3 import SAC

    from d2rl.algorithms.actor_critic.nets import run_updates
    from d2rl.algorithms.sac import SACConfig
    from d2rl.algorithms.sac.learner import build
    from d2rl.buffers.batches import ReplayBatches
    from d2rl.config import ReplayConfig
    from d2rl.core import BuildContext
    from d2rl.envs import EnvFacts
    from d2rl.registry import get_network

    torch.set_num_threads(1)
    sb3 = SAC(
        "MlpPolicy", "Pendulum-v1", learning_rate=HP["lr"], learning_starts=100, device="cpu", verbose=0
    )
    sb3.learn(600)  # fills its buffer
    identity = get_network("identity")
    ctx = BuildContext(
        observation_space=gym.spaces.Box(-8.0, 8.0, (3,), np.float32),
        action_space=gym.spaces.Box(-2.0, 2.0, (1,), np.float32),
        num_envs=1,
        facts=EnvFacts(),
        network=identity,
        network_cfg=identity.config_class(),
        replay_cfg=ReplayConfig(kind="uniform", capacity=10_000, save_in_checkpoint=False),
        total_env_steps=10_000,
        seed=0,
    )
    built = build(SACConfig(actor_lr=HP["lr"], critic_lr=HP["lr"], alpha_lr=HP["lr"]), ctx)
    learner, storage = built.learner, built.storage
    learner._opt = learner.configure_optimizers()
    for _ in range(600):
        o = np.random.randn(1, 3).astype(np.float32)
        storage.add(o, np.random.uniform(-2, 2, (1, 1)).astype(np.float32), np.zeros(1), o, [False], [False])
    out: dict[str, list[float]] = {"sb3": [], "d2rl": []}
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(n):
            sb3.train(gradient_steps=1, batch_size=HP["batch"])
        out["sb3"].append((time.perf_counter() - t0) / n * 1e3)
        t0 = time.perf_counter()
        # sampling included, as in SB3's train(): one sample call for the n batches, as in training
        run_updates(ReplayBatches(storage, n, HP["batch"], 0, 0, 1), learner.policy.scale, learner.update)
        out["d2rl"].append((time.perf_counter() - t0) / n * 1e3)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--update-only", action="store_true", help="only time gradient steps (interleaved)")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.update_only:
        ms = update_cost()
        ratio = statistics.median(ms["sb3"]) / statistics.median(ms["d2rl"])
        print(
            json.dumps(
                {
                    "ms_per_update": {k: [round(v, 2) for v in vs] for k, vs in ms.items()},
                    "speed_ratio": round(ratio, 2),
                }
            )
        )
        return
    d2, sb = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            d2.append(run_d2rl(args.steps, seed, Path(tmp) / f"d2rl_{seed}"))
            sb.append(run_sb3(args.steps, seed))
            print(
                f"seed {seed}: d2rl {d2[-1]['fit_s']:.1f} s ({d2[-1]['sps']:.0f} steps/s) return "
                f"{d2[-1]['return']:.1f} | sb3 {sb[-1]['fit_s']:.1f} s ({sb[-1]['sps']:.0f} steps/s) "
                f"return {sb[-1]['return']:.1f}",
                flush=True,
            )
    med = lambda rows, k: statistics.median(r[k] for r in rows)  # noqa: E731
    mean = lambda rows, k: statistics.fmean(r[k] for r in rows)  # noqa: E731
    report = {
        "steps": args.steps,
        "seeds": args.seeds,
        "d2rl_fit_s_median": round(med(d2, "fit_s"), 1),
        "sb3_fit_s_median": round(med(sb, "fit_s"), 1),
        "speed_ratio": round(med(sb, "fit_s") / med(d2, "fit_s"), 2),
        "d2rl_return_mean": round(mean(d2, "return"), 1),
        "sb3_return_mean": round(mean(sb, "return"), 1),
        "d2rl_returns": [round(r["return"], 1) for r in d2],
        "sb3_returns": [round(r["return"], 1) for r in sb],
        "d2rl_time_split_s": {k: round(mean(d2, k), 2) for k in ("fit_s", "collect_s", "update_and_loop_s")},
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
