"""SEED inference: batch size against latency and batch fill (``distributed=seed``, DQN).

    python benchmarks/seed_latency.py --actors 4 --envs-per-actor 2 --batch 1 2 4 8 --steps 20000

For each ``distributed.inference_batch_size`` one real run; from metrics.csv (rows after a quarter
of the steps): ``inference/latency_ms`` (a request's arrival to its answer, mean), the batch fill
(envs per batch / batch size) and total env steps/s. A batch leaves when full or after
``--timeout-ms``; with batches larger than the number of envs that can be waiting at once
(actors x envs per actor) every batch waits for the timeout, so latency jumps to about the timeout
and fill drops. On 2 cores the actors, the inference actor and the learner share two cores, so
the curve flattens as soon as more than ~2 actors are waiting: the inference actor cannot run
while the actors hold the cores, and the latency measured is mostly scheduling.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path
from typing import Any


def run_one(batch: int, actors: int, envs: int, steps: int, timeout_ms: float) -> dict[str, Any]:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from d2rl.config import register_configs
    from d2rl.registry import register_config_nodes
    from d2rl.train import train

    register_configs()
    register_config_nodes()
    out_dir = Path(tempfile.mkdtemp(prefix=f"seed_b{batch}_"))
    GlobalHydra.instance().clear()
    with initialize_config_module("d2rl.conf", version_base="1.3"):
        cfg = compose("config", overrides=[
            "algo=dqn", "env=cartpole", "distributed=seed", f"distributed.num_actors={actors}",
            f"distributed.envs_per_actor={envs}", f"distributed.inference_batch_size={batch}",
            f"distributed.inference_timeout_ms={timeout_ms}", f"trainer.total_env_steps={steps}",
            "trainer.eval_period_env_steps=0", "trainer.checkpoint_period_env_steps=0",
            "trainer.final_eval_episodes=1", f"trainer.log_period_env_steps={max(256, steps // 20)}",
            "trainer.progress_bar=false", "logger.tensorboard=false", "logger.learning_curve=false",
            "replay.save_in_checkpoint=false", f"output_dir={out_dir}",
        ])
    train(cfg)
    with (out_dir / "metrics.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("inference/latency_ms")]
    late = [r for r in rows if float(r["env_step"]) >= steps // 4] or rows
    mean = lambda k: sum(float(r[k]) for r in late) / len(late)  # noqa: E731
    return {"batch": batch, "latency_ms": mean("inference/latency_ms"), "batch_fill": mean("inference/batch_fill"),
            "env_steps_per_s": mean("perf/env_steps_per_s"), "run_dir": str(out_dir)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--actors", type=int, default=4)
    p.add_argument("--envs-per-actor", type=int, default=2)
    p.add_argument("--batch", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    p.add_argument("--timeout-ms", type=float, default=3.0)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--out", type=Path, default=Path("seed_latency.json"))
    args = p.parse_args()
    # each run starts (and stops) its own local Ray, sized by d2rl for the CPUs its actors ask for
    # (distributed.session.cpu_demand; oversubscribing 2 cores with 4 actors is the point here);
    # the rates exclude the start-up (steady state after a quarter of the run)
    results = []
    for b in args.batch:
        r = run_one(b, args.actors, args.envs_per_actor, args.steps, args.timeout_ms)
        results.append(r)
        print(f"batch {b:3d}: latency {r['latency_ms']:7.2f} ms, fill {r['batch_fill']:.2f}, "
              f"{r['env_steps_per_s']:.0f} env steps/s")
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
