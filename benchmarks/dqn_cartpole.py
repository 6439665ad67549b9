"""DQN on CartPole-v1: d2rl vs stable-baselines3 with the same hyperparameters, plus PER throughput.

    python benchmarks/dqn_cartpole.py --steps 50000 --seeds 1 2

Hyperparameters: rl-baselines3-zoo's tuned CartPole DQN (d2rl's conf/tuned/dqn_cartpole.yaml):
1 env, lr 2.3e-3, batch 64, buffer 100k, learning starts 1000, gamma 0.99, target sync every 10
env steps, 128 gradient steps every 256 env steps (so both do the same 128 x 191 gradient steps
over 50k steps), epsilon 1 -> 0.04 over 16% of the run, 256-256 ReLU MLP, Huber loss, grad-norm
clip 10, Adam. Both use 1 torch thread. Reports training wall clock (eval excluded), the
final deterministic eval return over 10 episodes, d2rl's time split (the Loop's env stepping,
acting and replay writes; the rest is gradient steps with their sampling, and Lightning), and PER
sampling rate.

``--update-only`` times d2rl's learner exactly as a run calls it (``DQNLearner.training_step`` on
the round's ``ReplayBatches``: uniform batches drawn in one call) against SB3's ``train``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

HP = dict(
    lr=2.3e-3,
    batch=64,
    buffer=100_000,
    learning_starts=1000,
    gamma=0.99,
    target_update=10,
    train_freq=256,
    gradient_steps=128,
    exploration_fraction=0.16,
    eps_final=0.04,
)


def eval_returns(policy, episodes: int = 10, seed: int = 20_000) -> float:  # type: ignore[no-untyped-def]
    envs = gym.make_vec(
        "CartPole-v1",
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
                "algo=dqn",  # + conf/tuned/dqn_cartpole.yaml, pinned back to SB3's zoo HP above:
                "algo.lr=2.3e-3",
                "algo.anneal_lr=false",
                "algo.double=false",
                "algo.n_step=1",
                f"seed={seed}",
                f"output_dir={out}",
                f"trainer.total_env_steps={steps}",
                "trainer.progress_bar=false",
                "trainer.eval_period_env_steps=0",
                "trainer.checkpoint_period_env_steps=0",
                "trainer.final_eval_episodes=10",
                "logger.learning_curve=false",
                "trainer.torch_threads=1",
            ],
        )
    res = train(cfg)
    s = json.loads((out / "summary.json").read_text())
    fit, t = s["fit_time_s"], s["timings_s"]  # the Loop's env / act / store seconds
    return {
        "fit_s": fit,
        "return": res["eval/return_mean"],
        "env_s": t["env"],
        "act_s": t["act"],
        "store_s": t["store"],
        "update_and_loop_s": fit - t["env"] - t["act"] - t["store"],  # gradient steps, sampling, Lightning
    }


def run_sb3(steps: int, seed: int) -> dict[str, float]:
    from stable_baselines3 import DQN

    torch.set_num_threads(1)
    model = DQN(
        "MlpPolicy",
        "CartPole-v1",
        learning_rate=HP["lr"],
        batch_size=HP["batch"],
        buffer_size=HP["buffer"],
        learning_starts=HP["learning_starts"],
        gamma=HP["gamma"],
        target_update_interval=HP["target_update"],
        train_freq=HP["train_freq"],
        gradient_steps=HP["gradient_steps"],
        exploration_fraction=HP["exploration_fraction"],
        exploration_final_eps=HP["eps_final"],
        policy_kwargs={"net_arch": [256, 256]},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    dt = time.perf_counter() - t0
    return {"fit_s": dt, "return": eval_returns(lambda o: model.predict(o, deterministic=True)[0])}


def per_rate(capacity: int = 1_000_000, batch: int = 32, seconds: float = 3.0) -> dict[str, float]:
    """Batches/s of PrioritizedReplayBuffer.sample + update_priorities at ``capacity`` (CartPole obs)."""
    from d2rl.buffers.prioritized import PrioritizedReplayBuffer

    n_envs = 1000
    buf = PrioritizedReplayBuffer(capacity, n_envs, (4,), np.float32, n_step=3, seed=0)
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((n_envs, 4)).astype(np.float32)
    for _ in range(buf.rows + 10):  # fill the ring (a little over once)
        done = rng.random(n_envs) < 0.005
        buf.add(
            obs, rng.integers(0, 2, n_envs), np.ones(n_envs, np.float32), obs, done, np.zeros(n_envs, bool)
        )
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        b = buf.sample(batch)
        buf.update_priorities(b["indices"], rng.random(batch))
        n += 1
    return {"stored": len(buf), "batches_per_s": n / (time.perf_counter() - t0), "batch": batch}


def update_cost(steps: int = 300, rounds: int = 3) -> dict[str, float]:
    """Milliseconds per gradient step (sample + loss + backward + clip + Adam) of each library,
    measured in alternating rounds in one process so both see the same machine load."""
    from stable_baselines3 import DQN

    from d2rl.algorithms.dqn import DQNConfig
    from d2rl.algorithms.dqn.learner import build
    from d2rl.buffers.batches import ReplayBatches
    from d2rl.config import ReplayConfig
    from d2rl.core import BuildContext
    from d2rl.envs import EnvFacts
    from d2rl.networks import MLPConfig
    from d2rl.registry import get_network

    torch.set_num_threads(1)
    sb3 = DQN(
        "MlpPolicy",
        "CartPole-v1",
        learning_rate=HP["lr"],
        batch_size=HP["batch"],
        buffer_size=10_000,
        learning_starts=0,
        train_freq=4,
        gradient_steps=1,
        policy_kwargs={"net_arch": [256, 256]},
        device="cpu",
    )
    sb3.learn(total_timesteps=2_000)  # fills its buffer
    ctx = BuildContext(
        observation_space=gym.spaces.Box(-5, 5, (4,)),
        action_space=gym.spaces.Discrete(2),
        num_envs=1,
        facts=EnvFacts(),
        network=get_network("mlp"),
        network_cfg=MLPConfig(hidden_sizes=[256, 256], activation="relu"),
        replay_cfg=ReplayConfig(kind="uniform", capacity=10_000),
        total_env_steps=50_000,
        seed=0,
    )
    built = build(DQNConfig(lr=HP["lr"], batch_size=HP["batch"], learning_starts_env_steps=0), ctx)
    learner, storage = built.learner, built.storage
    learner._opts = learner.configure_optimizers()  # what on_train_start takes from the Trainer
    rng = np.random.default_rng(0)
    for i in range(2_000):
        o = rng.standard_normal((1, 4)).astype(np.float32)
        storage.add(
            o, np.array([i % 2]), np.ones(1, np.float32), o, np.array([i % 50 == 0]), np.zeros(1, bool)
        )

    def d2rl_steps() -> None:
        learner.training_step(ReplayBatches(storage, steps, HP["batch"], 2_000, 0, 1), 0)

    out = {"d2rl_ms": 0.0, "sb3_ms": 0.0}
    for _ in range(rounds):
        t0 = time.perf_counter()
        d2rl_steps()
        out["d2rl_ms"] += (time.perf_counter() - t0) / (steps * rounds) * 1e3
        t0 = time.perf_counter()
        sb3.train(gradient_steps=steps, batch_size=HP["batch"])
        out["sb3_ms"] += (time.perf_counter() - t0) / (steps * rounds) * 1e3
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=50_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--skip-sb3", action="store_true")
    p.add_argument("--update-only", action="store_true", help="only the per-gradient-step cost and PER rate")
    args = p.parse_args()
    if args.update_only:
        print("ms per gradient step:", json.dumps({k: round(v, 3) for k, v in update_cost().items()}))
        print("PER at 1M:", json.dumps({k: round(v, 1) for k, v in per_rate().items()}))
        return
    torch.set_num_threads(1)
    d2, sb = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            d2.append(run_d2rl(args.steps, seed, Path(tmp) / f"d2rl_{seed}"))
            print("d2rl", seed, json.dumps({k: round(v, 2) for k, v in d2[-1].items()}), flush=True)
            if not args.skip_sb3:
                sb.append(run_sb3(args.steps, seed))
                print("sb3 ", seed, json.dumps({k: round(v, 2) for k, v in sb[-1].items()}), flush=True)
    mean = statistics.fmean
    print(f"d2rl: {mean(r['fit_s'] for r in d2):.1f} s, return {[r['return'] for r in d2]}")
    split = {k: round(mean(r[k] for r in d2), 1) for k in d2[0] if k.endswith("_s") and k != "fit_s"}
    print(f"d2rl time split (s): {split}")
    if sb:
        print(f"sb3:  {mean(r['fit_s'] for r in sb):.1f} s, return {[r['return'] for r in sb]}")
        print(
            f"speed ratio (sb3 time / d2rl time): {mean(r['fit_s'] for r in sb) / mean(r['fit_s'] for r in d2):.2f}"
        )
    print("PER at 1M:", json.dumps({k: round(v, 1) for k, v in per_rate().items()}))


if __name__ == "__main__":
    main()
