"""Network Randomization (Lee et al. 2020) on Procgen: PPO with impala_resnet, with and without the
random input conv, same budget; final policy evaluated on the training levels and on unseen levels.

    python benchmarks/procgen_generalization.py --game coinrun --steps 100000 --seeds 1

Prints one JSON line per run and a summary. The budget here is tiny next to the papers' 25M steps:
read the numbers as what this machine can show, not as a reproduction.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from d2rl.config import register_configs
from d2rl.evaluation import evaluate
from d2rl.registry import register_config_nodes
from d2rl.train import train


def run(game: str, steps: int, seed: int, randomized: bool, out: Path, episodes: int) -> dict[str, float]:
    GlobalHydra.instance().clear()
    with initialize_config_module("d2rl.conf", version_base="1.3"):
        cfg = compose("config", overrides=[
            f"env=procgen_{game}", "algo=ppo", "network=impala_resnet", f"seed={seed}", f"output_dir={out}",
            f"trainer.total_env_steps={steps}", "env.num_envs=16", "algo.num_steps=128",
            "algo.num_minibatches=4", "algo.update_epochs=3", "algo.lr=5e-4", "algo.ent_coef=0.01",
            "algo.gamma=0.999", "algo.shared_encoder=true", "trainer.progress_bar=false",
            "trainer.eval_period_env_steps=0", "trainer.final_eval_episodes=1", "logger.learning_curve=false",
            f"network.random_conv={str(randomized).lower()}",
        ])  # fmt: skip
    t0 = time.perf_counter()
    train(cfg)
    fit_s = time.perf_counter() - t0
    from d2rl import checkpoint
    from d2rl.train import load_policy

    policy, run_cfg = load_policy(checkpoint.load(out))
    result = {"randomized": randomized, "seed": seed, "steps": steps, "train_s": round(fit_s, 1)}
    for levels in ("train", "test"):
        env_cfg = OmegaConf.merge(run_cfg.env, {"kwargs": {"eval_levels": levels}})
        returns = evaluate(policy, env_cfg, episodes, seed + 20_000, deterministic=False)
        result[f"{levels}_return"] = round(float(returns.mean()), 2)
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--game", default="coinrun")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument("--episodes", type=int, default=50)
    args = p.parse_args()
    register_configs()
    register_config_nodes()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for randomized in (False, True):
                rows.append(
                    run(
                        args.game,
                        args.steps,
                        seed,
                        randomized,
                        Path(tmp) / f"{seed}_{randomized}",
                        args.episodes,
                    )
                )
    for randomized in (False, True):
        sel = [r for r in rows if r["randomized"] is randomized]
        print(f"random_conv={randomized}: train {statistics.fmean(r['train_return'] for r in sel):.2f} "
              f"test {statistics.fmean(r['test_return'] for r in sel):.2f} over seeds {args.seeds}")  # fmt: skip


if __name__ == "__main__":
    main()
