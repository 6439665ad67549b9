"""PPO on CartPole-v1: d2rl vs stable-baselines3 with the same hyperparameters, in one run.

    python benchmarks/ppo_cartpole.py --steps 100000 --seeds 1 2 3

Hyperparameters (CleanRL's ppo.py CartPole settings): 4 envs x 128 steps, 4 epochs, 4 minibatches,
lr 2.5e-4 annealed linearly to 0, gamma 0.99, GAE lambda 0.95, clip 0.2, no value clipping
(SB3's default), entropy 0.01, vf 0.5, max grad norm 0.5, 64-64 tanh separate actor/critic.
Both use 1 torch thread and a sync vector env. Reports training env steps/s (eval excluded),
final deterministic eval return over 10 episodes, and Lightning's share of d2rl's time.
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

HP = dict(
    num_envs=4,
    num_steps=128,
    epochs=4,
    minibatches=4,
    lr=2.5e-4,
    gamma=0.99,
    lam=0.95,
    clip=0.2,
    ent=0.01,
    vf=0.5,
    max_grad=0.5,
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
                f"env.num_envs={HP['num_envs']}",
                f"algo.num_steps={HP['num_steps']}",
                f"algo.update_epochs={HP['epochs']}",
                f"algo.num_minibatches={HP['minibatches']}",
                f"algo.lr={HP['lr']}",
                f"algo.gamma={HP['gamma']}",
                f"algo.gae_lambda={HP['lam']}",
                f"algo.clip_coef={HP['clip']}",
                "algo.clip_vloss=false",
                f"algo.ent_coef={HP['ent']}",
                f"algo.vf_coef={HP['vf']}",
                f"algo.max_grad_norm={HP['max_grad']}",
            ],
        )
    res = train(cfg)
    s = json.loads((out / "summary.json").read_text())
    fit, t = s["fit_time_s"], s["timings_s"]
    return {
        "sps": s["env_steps"] / fit,
        "return": res["eval/return_mean"],
        "fit_s": fit,
        "collect_s": t["env"] + t["act"] + t["store"],
        "update_s": t["update"],
        # Lightning's per-step hooks and d2rl's callbacks around training_step
        "lightning_step_s": t["learner_step"] - t["update"],
        "loop_overhead_s": fit - t["env"] - t["act"] - t["store"] - t["learner_step"],
    }


def run_sb3(steps: int, seed: int) -> dict[str, float]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    env = make_vec_env("CartPole-v1", n_envs=HP["num_envs"], seed=seed)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=HP["num_steps"],
        batch_size=HP["num_envs"] * HP["num_steps"] // HP["minibatches"],
        n_epochs=HP["epochs"],
        learning_rate=lambda p: HP["lr"] * p,
        gamma=HP["gamma"],
        gae_lambda=HP["lam"],
        clip_range=HP["clip"],
        ent_coef=HP["ent"],
        vf_coef=HP["vf"],
        max_grad_norm=HP["max_grad"],
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


def lightning_call_overhead(n: int = 2000) -> dict[str, float]:
    """Per-minibatch cost of Lightning's manual-optimisation calls vs the raw torch calls they wrap."""
    import lightning as L

    from d2rl.modules.mlp import MLP

    class M(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False
            self.net = torch.nn.Sequential(MLP(4, [64, 64]), torch.nn.Linear(64, 1))
            self.t: dict[str, float] = {}

        def configure_optimizers(self):  # type: ignore[no-untyped-def]
            return torch.optim.Adam(self.parameters(), lr=1e-4, eps=1e-5)

        def training_step(self, batch, idx):  # type: ignore[no-untyped-def]
            x = torch.randn(128, 4)
            opt = self.optimizers()
            raw = opt.optimizer  # the torch optimizer Lightning wraps
            for mode in ("lightning", "raw", "lightning", "raw"):
                t0 = time.perf_counter()
                for _ in range(n // 2):
                    loss = self.net(x).square().mean()
                    if mode == "lightning":
                        opt.zero_grad()
                        self.manual_backward(loss)
                        self.clip_gradients(opt, gradient_clip_val=0.5, gradient_clip_algorithm="norm")
                        opt.step()
                    else:
                        raw.zero_grad()
                        loss.backward()
                        torch.nn.utils.clip_grad_norm_(self.parameters(), 0.5)
                        raw.step()
                self.t[mode] = self.t.get(mode, 0.0) + time.perf_counter() - t0

    m = M()
    L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(m, train_dataloaders=range(1))
    return {k: v / n * 1e6 for k, v in m.t.items()}  # microseconds per minibatch update


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = p.parse_args()
    torch.set_num_threads(1)
    d2, sb = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            d2.append(run_d2rl(args.steps, seed, Path(tmp) / f"d2rl_{seed}"))
            sb.append(run_sb3(args.steps, seed))
            print(
                f"seed {seed}: d2rl {d2[-1]['sps']:.0f} steps/s return {d2[-1]['return']:.1f} | "
                f"sb3 {sb[-1]['sps']:.0f} steps/s return {sb[-1]['return']:.1f}",
                flush=True,
            )
    med = lambda rows, k: statistics.median(r[k] for r in rows)  # noqa: E731
    mean = lambda rows, k: statistics.fmean(r[k] for r in rows)  # noqa: E731
    calls = lightning_call_overhead()
    fit = mean(d2, "fit_s")
    # d2rl's learners call the raw torch optimizers, so Lightning's cost is its per-step hooks
    lightning_update_s = mean(d2, "lightning_step_s")
    report = {
        "steps": args.steps,
        "seeds": args.seeds,
        "d2rl_steps_per_s_median": round(med(d2, "sps")),
        "sb3_steps_per_s_median": round(med(sb, "sps")),
        "speed_ratio": round(med(d2, "sps") / med(sb, "sps"), 2),
        "d2rl_return_mean": round(mean(d2, "return"), 1),
        "sb3_return_mean": round(mean(sb, "return"), 1),
        "d2rl_time_split_s": {
            k: round(mean(d2, k), 2)
            for k in ("fit_s", "collect_s", "update_s", "lightning_step_s", "loop_overhead_s")
        },
        "lightning_manual_calls_us_per_minibatch (not used by d2rl)": {
            k: round(v, 1) for k, v in calls.items()
        },
        "lightning_share_of_update": round(
            lightning_update_s / (mean(d2, "update_s") + lightning_update_s), 3
        ),
        "lightning_share_of_fit": round(lightning_update_s / fit, 3),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
