"""A replay shard's memory across repeated checkpoint pulls (Ape-X), without a training run.

    python benchmarks/shard_checkpoint_memory.py --pulls 40

One ``ReplayShard`` Ray actor holds two 50k-transition prioritized slots of CartPole-shaped data
(as the soak's 100k replay over 2 actors). Each pull does what a checkpoint does
(``ray.get(shard.state_dict.remote())``, then ``transfer.as_tensors``) after 20 sample calls,
and records the shard's and this driver's memory from /proc: RSS, PSS, RssAnon (the process's own
heap) and RssShmem (pages of Ray's object store it has touched).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import ray

from d2rl.distributed.replay import ReplayShard
from d2rl.distributed.roles import _make_buffer
from d2rl.distributed.transfer import as_tensors
from d2rl.envs import EnvFacts


def memory(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, keys in (("smaps_rollup", ("Rss:", "Pss:")), ("status", ("RssAnon:", "RssShmem:"))):
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(keys):
                out[line.split(":")[0].lower()] = round(int(line.split()[1]) / 1024, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pulls", type=int, default=40)
    ap.add_argument("--capacity-per-slot", type=int, default=50_000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    cfg = {"kind": "prioritized", "capacity": 0, "dedup_frames": False, "alpha": 0.6, "priority_eps": 1e-6,
           "importance_weights": True, "beta_initial": 0.4, "beta_final": 1.0}
    box = gym.spaces.Box(-1, 1, (4,), np.float32)
    make = functools.partial(_make_buffer, cfg, box, gym.spaces.Discrete(2), 8, 3, 0.99, EnvFacts(), 0)
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        shard = ray.remote(ReplayShard).options(num_cpus=0.25).remote(make, args.capacity_per_slot, 0)
        pid = ray.get(shard.__ray_call__.remote(lambda self: os.getpid()))
        rng = np.random.default_rng(0)
        for rank in (0, 1):
            for _ in range(args.capacity_per_slot // (8 * 50) + 5):
                chunk = {
                    "obs": rng.random((50, 8, 4), dtype=np.float32),
                    "next_obs": rng.random((50, 8, 4), dtype=np.float32),
                    "action": rng.integers(0, 2, (50, 8)),
                    "reward": rng.random((50, 8), dtype=np.float32),
                    "terminated": rng.random((50, 8)) < 0.02,
                    "truncated": np.zeros((50, 8), bool),
                }
                ray.get(shard.add.remote(rank, chunk, rng.random((50, 8)), False))
        rows = [{"pull": 0, "shard": memory(pid), "driver": memory(os.getpid())}]
        for i in range(1, args.pulls + 1):
            ray.get([shard.sample.remote(256, 0.4) for _ in range(20)])
            state = as_tensors(ray.get(shard.state_dict.remote()))
            mb = sum(v.numel() * v.element_size() for part in state.values() for v in part["buffer"].values()) / 2**20
            del state
            rows.append({"pull": i, "state_mb": round(mb, 1), "shard": memory(pid), "driver": memory(os.getpid())})
            print(json.dumps(rows[-1]), flush=True)
    finally:
        ray.shutdown()
    result = {"first": rows[0], "last": rows[-1], "rows": rows}
    print(json.dumps({"first": rows[0], "last": rows[-1]}, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
