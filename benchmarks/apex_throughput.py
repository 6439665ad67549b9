"""Ape-X DQN throughput on Ray: total env steps/s for 1, 2 and 4 actors, learner updates/s, the
CPU cost of one actor env step and of one learner update, and a projection to a 64-core cluster.

    python benchmarks/apex_throughput.py --env cartpole atari_pong --actors 1 2 4 --steps 20000

Each configuration is one real run (``train()`` with ``distributed=apex``, ``learner_pace=free``:
actors and learner both run flat out). Rates are steady-state: measured from metrics.csv between
the first row logged after ``--warmup`` of the steps and the last row (actor start-up and the
replay warm-up excluded). CPU costs come from the same runs:

- actor: CPU seconds per env step = ``1 / (env steps/s of one actor)`` with 1 actor, i.e. one
  process stepping its envs, acting (policy forward), computing initial priorities and shipping
  chunks, measured while it has a core to itself (the 1-actor run on a machine with >= 3 cores);
- learner: CPU seconds per update = the driver's ``training_step`` time / updates (one torch
  thread: wall time = CPU time of that thread).

Projection to C cores (printed for C = 64): one core for the learner, one per replay shard (one
shard per 16 actors), the rest for actors: ``env steps/s = n_actors / actor_cpu_s_per_step``;
``updates/s = 1 / learner_cpu_s_per_update`` (a CPU learner does not scale with cores; a GPU
learner's rate must be measured on the GPU). This is an upper bound: it assumes the object store
and the shards keep up (check replay/sampled_per_inserted and the shard's add time on a real
cluster). On a 2-core machine the measured curve flattens at 1-2 actors: the learner, the
shard and the actors share two cores, so adding actors only moves CPU from the learner to them.

Run it on a quiet machine; the JSON goes to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path
from typing import Any

ENV_ARGS = {
    "cartpole": ["env=cartpole"],
    "atari_pong": ["env=atari_pong", "env.num_envs=1", "replay.capacity=50000"],
}


def steady_rates(run: Path, warmup: int) -> dict[str, float]:
    with (run / "metrics.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("dist/learner_updates")]
    rows = [r for r in rows if float(r["env_step"]) >= warmup] or rows
    first, last = rows[0], rows[-1]
    dt = max(float(last["wall_time"]) - float(first["wall_time"]), 1e-9)
    actors = sorted(k for k in last if k.startswith("perf/actor_env_steps_per_s/"))
    return {
        "env_steps_per_s": (float(last["env_step"]) - float(first["env_step"])) / dt,
        "learner_updates_per_s": (float(last["dist/learner_updates"]) - float(first["dist/learner_updates"])) / dt,
        "per_actor_env_steps_per_s": [
            sum(float(r[k]) for r in rows[1:] if r.get(k)) / max(1, len(rows) - 1) for k in actors
        ],
        "window_s": dt,
    }


def run_one(env: str, actors: int, steps: int, seed: int) -> dict[str, Any]:
    from hydra import compose, initialize_config_module

    from d2rl.config import register_configs
    from d2rl.registry import register_config_nodes
    from d2rl.train import train

    register_configs()
    register_config_nodes()
    out_dir = Path(tempfile.mkdtemp(prefix=f"apex_{env}_{actors}_"))
    overrides = [
        "algo=dqn",
        *ENV_ARGS[env],
        "distributed=apex",
        f"distributed.num_actors={actors}",
        "distributed.learner_pace=free",
        f"trainer.total_env_steps={steps}",
        "trainer.eval_period_env_steps=0",
        "trainer.checkpoint_period_env_steps=0",
        "trainer.final_eval_episodes=1",
        f"trainer.log_period_env_steps={max(256, steps // 20)}",
        "trainer.progress_bar=false",
        "logger.tensorboard=false",
        "logger.learning_curve=false",
        "replay.save_in_checkpoint=false",
        f"seed={seed}",
        f"output_dir={out_dir}",
    ]
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module("d2rl.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    train(cfg)
    summary = json.loads((out_dir / "summary.json").read_text())
    rates = steady_rates(out_dir, warmup=steps // 4)
    update_s = summary["timings_s"].get("update", 0.0) / max(1, summary["learner_updates"])
    return {"env": env, "actors": actors, "steps": summary["env_steps"], **rates,
            "learner_cpu_s_per_update": update_s, "run_dir": str(out_dir)}


def project(actor_cpu_s_per_step: float, learner_cpu_s_per_update: float, cores: int) -> dict[str, float]:
    shards = 1
    actors = cores - 1 - shards
    while actors > 16 * shards:
        shards += 1
        actors = cores - 1 - shards
    return {
        "cores": cores,
        "actors": actors,
        "replay_shards": shards,
        "env_steps_per_s": actors / max(actor_cpu_s_per_step, 1e-12),
        "learner_updates_per_s_cpu": 1.0 / max(learner_cpu_s_per_update, 1e-12),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", nargs="+", default=["cartpole", "atari_pong"], choices=sorted(ENV_ARGS))
    p.add_argument("--actors", nargs="+", type=int, default=[1, 2, 4])
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cores", type=int, default=64)
    p.add_argument("--out", type=Path, default=Path("apex_throughput.json"))
    args = p.parse_args()
    # each run starts (and stops) its own local Ray, sized by d2rl for the CPUs its actors ask for
    # (distributed.session.cpu_demand; oversubscribing 2 cores with 4 actors is the point here);
    # the rates exclude the start-up (steady state after a quarter of the run)
    results: list[dict[str, Any]] = []
    for env in args.env:
        for n in args.actors:
            r = run_one(env, n, args.steps, args.seed)
            results.append(r)
            print(f"{env:11s} actors={n}: {r['env_steps_per_s']:8.0f} env steps/s, "
                  f"{r['learner_updates_per_s']:6.1f} updates/s, per actor "
                  f"{[round(x) for x in r['per_actor_env_steps_per_s']]}, "
                  f"{1000 * r['learner_cpu_s_per_update']:.2f} ms/update")
        one = next((r for r in results if r["env"] == env and r["actors"] == 1), None)
        if one and one["per_actor_env_steps_per_s"]:
            actor_cost = 1.0 / max(one["per_actor_env_steps_per_s"][0], 1e-9)
            proj = project(actor_cost, one["learner_cpu_s_per_update"], args.cores)
            results.append({"env": env, "projection": proj, "actor_cpu_s_per_env_step": actor_cost})
            print(f"{env:11s} actor CPU {1e3 * actor_cost:.3f} ms/env step -> {args.cores} cores: "
                  f"{proj['actors']} actors, {proj['replay_shards']} shards, "
                  f"~{proj['env_steps_per_s']:.0f} env steps/s; CPU learner <= "
                  f"{proj['learner_updates_per_s_cpu']:.0f} updates/s")
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
