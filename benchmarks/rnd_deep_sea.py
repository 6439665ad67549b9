"""RND against PPO on deep sea (env=deep_sea): distinct cells visited in training, same env-step budget.

    python benchmarks/rnd_deep_sea.py --steps 32768 --seeds 1 2 3
    python benchmarks/rnd_deep_sea.py env.kwargs.randomize_actions=true --size 20 --steps 60000

RND runs ``experiment=rnd_deep_sea`` (its settings are in conf/experiment/rnd_deep_sea.yaml: N = 30,
action mapping fixed); PPO runs d2rl's PPO defaults on the same env (16 envs, fixed mapping) and
rollout length (128 steps). Overrides on the command line apply to both. The
count is the number of distinct (row, col) cells in the observations of all training rollouts,
out of the N(N+1)/2 reachable ones; also reported: whether the +1 at the bottom right was reached
in training (an episode return > 0) and the final policy's evaluation return.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import lightning as L

from d2rl.envs.exploration import DeepSeaVisits

SETTINGS = {
    "rnd": ["experiment=rnd_deep_sea"],
    "ppo": ["algo=ppo", "env=deep_sea", "env.kwargs.randomize_actions=false", "algo.num_steps=128"],
}


class VisitCounter(L.Callback):
    """Counts the distinct deep-sea cells in every training rollout (``batch`` is the ``Rollout``)."""

    def __init__(self, size: int) -> None:
        self.visits = DeepSeaVisits(size)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.visits.add(batch.data["obs"].numpy())
        self.visits.add(batch.last_obs.numpy())


def run(algo: str, seed: int, steps: int, size: int, out: Path, extra: list[str]) -> dict[str, Any]:
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
                *SETTINGS[algo],
                f"env.kwargs.size={size}",
                f"seed={seed}",
                f"trainer.total_env_steps={steps}",
                "trainer.torch_threads=1",
                "trainer.progress_bar=false",
                "trainer.eval_period_env_steps=0",
                "trainer.checkpoint_period_env_steps=0",
                "logger.tensorboard=false",
                "logger.learning_curve=false",
                f"output_dir={out}",
                *extra,
            ],
        )
    counter = VisitCounter(size)
    result = train(cfg, callbacks=[counter])
    with open(out / "metrics.csv") as f:
        returns = [
            float(r["train/episode_return"]) for r in csv.DictReader(f) if r.get("train/episode_return")
        ]
    return {
        "algo": algo,
        "seed": seed,
        "env_steps": result["env_steps"],
        "distinct_states": counter.visits.count,
        "reachable_states": counter.visits.reachable,
        "reward_found": any(r > 0 for r in returns),
        "final_eval": result["eval/return_mean"],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=32768)
    p.add_argument("--size", type=int, default=30)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--algos", nargs="+", default=["rnd", "ppo"], choices=sorted(SETTINGS))
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for both runs")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for algo in args.algos:
                row = run(algo, seed, args.steps, args.size, Path(tmp) / f"{algo}_{seed}", args.overrides)
                rows.append(row)
                print(json.dumps(row), flush=True)
    for algo in args.algos:
        counts = [r["distinct_states"] for r in rows if r["algo"] == algo]
        print(
            f"{algo}: distinct states per seed {counts} (of {rows[0]['reachable_states']})", file=sys.stderr
        )


if __name__ == "__main__":
    main()
