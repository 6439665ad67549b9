"""Pixel throughput: networks alone, raw env steps/s, and end-to-end PPO training steps/s, in one run.

    python benchmarks/pixel_throughput.py                  # everything (~10 min on 2 cores)
    python benchmarks/pixel_throughput.py --parts networks --threads 1 2 --compile

networks: forward (no grad) samples/s at the acting batch (= num_envs) and forward+backward
samples/s at the PPO minibatch, for nature_cnn on [4, 84, 84] and impala_resnet on [3, 64, 64],
in channels_first and channels_last, optionally torch.compile'd, for each thread count.
envs: random-action env steps/s of the atari suite (Pong, native backend, 8 and 16 envs; and the
gymnasium backend) and of procgen (CoinRun, 64 envs).
ppo: `train(cfg)` (real config, PPO with separate actor/critic encoders, uint8 rollouts, eval off)
on the same env settings; training steps/s is reported as a fraction of the raw env rate and
of the rate the network alone allows. One PPO iteration costs, per env step, 1 actor + 1 critic
forward while acting, and update_epochs x (actor + critic) forward+backward; so the network-bound
rate is 1 / (2 / fwd + 2 * epochs / fwdbwd) with the measured per-sample rates.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

NETS = {"nature_cnn": (4, 84, 84), "impala_resnet": (3, 64, 64), "resnet": (3, 64, 64)}


def _rate(fn: Any, batch: int, min_s: float = 1.5) -> float:
    fn()  # warm-up (oneDNN primitive creation, compile)
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_s:
        fn()
        n += 1
    return n * batch / (time.perf_counter() - t0)


def measure(
    run: Any,
    opt: torch.optim.Optimizer,
    shape: tuple[int, ...],
    fwd_batches: list[int],
    train_batches: list[int],
) -> dict[str, int]:
    """Samples/s of a no-grad forward at each acting batch and of forward+backward+Adam at ``train_batch``."""
    out = {}
    for b in fwd_batches:
        x = torch.randint(0, 256, (b, *shape), dtype=torch.uint8)

        def fwd(x: torch.Tensor = x) -> None:
            with torch.no_grad():
                run(x)

        out[f"fwd@{b}"] = round(_rate(fwd, b))
    for b in train_batches:
        xb = torch.randint(0, 256, (b, *shape), dtype=torch.uint8)

        def fwdbwd(xb: torch.Tensor = xb) -> None:
            opt.zero_grad()
            run(xb).square().mean().backward()
            opt.step()

        out[f"fwdbwd@{b}"] = round(_rate(fwdbwd, b))
    return out


def bench_networks(
    threads: list[int], compile_: bool, fwd_batches: list[int], train_batches: list[int]
) -> list[dict]:
    from d2rl.modules import cnn

    builders = {
        "nature_cnn": (cnn.build_nature_cnn, cnn.NatureCNNConfig),
        "impala_resnet": (cnn.build_impala_resnet, cnn.ImpalaResNetConfig),
        "resnet": (cnn.build_resnet, cnn.ResNetConfig),
    }
    rows = []
    for t in threads:
        torch.set_num_threads(t)
        for name, shape in NETS.items():
            build, cfg_cls = builders[name]
            variants = [("channels_first", False, False), ("channels_last", True, False)]
            if compile_:
                variants.append(("compiled", False, True))
            for label, cl, comp in variants:
                torch.manual_seed(0)
                net = build(cfg_cls(channels_last=cl), shape)
                head = torch.nn.Linear(net.out_dim, 7)
                if cl:
                    net = net.to(memory_format=torch.channels_last)
                model = torch.nn.Sequential(net, head)
                run = torch.compile(model) if comp else model
                opt = torch.optim.Adam(model.parameters(), lr=1e-4)
                row: dict[str, Any] = {"threads": t, "net": name, "variant": label}
                row.update(measure(run, opt, shape, fwd_batches, train_batches))
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def bench_env(env: str, num_envs: int, steps: int, kwargs: dict[str, Any]) -> float:
    from omegaconf import OmegaConf

    from d2rl.envs import make_vec_env

    cfg = OmegaConf.create(
        {
            "suite": env.split("_")[0],
            "id": env.split("_", 1)[1],
            "num_envs": num_envs,
            "vectorization": "sync",
            "max_episode_steps": None,
            "kwargs": kwargs,
        }
    )
    envs = make_vec_env(cfg, 0)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    n = envs.single_action_space.n
    actions = [rng.integers(0, n, num_envs) for _ in range(64)]
    for i in range(20):
        envs.step(actions[i % 64])
    t0 = time.perf_counter()
    for i in range(steps):
        envs.step(actions[i % 64])
    rate = steps * num_envs / (time.perf_counter() - t0)
    envs.close()
    return rate


def bench_ppo(env: str, network: str, num_envs: int, total: int, overrides: list[str], threads: int) -> dict:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from d2rl.config import register_configs
    from d2rl.registry import register_config_nodes
    from d2rl.train import train

    register_configs()
    register_config_nodes()
    GlobalHydra.instance().clear()
    out_dir = Path(tempfile.mkdtemp(prefix="pixbench_"))
    with initialize_config_module("d2rl.conf", version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                f"env={env}",
                f"network={network}",
                "~tuned",
                f"env.num_envs={num_envs}",
                f"trainer.total_env_steps={total}",
                f"trainer.torch_threads={threads}",
                "trainer.eval_period_env_steps=0",
                "trainer.final_eval_episodes=1",
                "trainer.checkpoint_period_env_steps=0",
                "trainer.progress_bar=false",
                "logger.learning_curve=false",
                f"output_dir={out_dir}",
                *overrides,
            ],
        )
    train(cfg)
    s = json.loads((out_dir / "summary.json").read_text())
    return {"steps_per_s": s["env_steps_per_s"], "timings_s": s["timings_s"], "env_steps": s["env_steps"]}


def summarize(results: dict[str, Any], cases: list[tuple], threads: int) -> list[dict[str, Any]]:
    """Training steps/s as a fraction of the raw env rate and of the network-bound rate.

    Network-bound rate per env step: k forwards at the acting batch (num_envs) and
    k * update_epochs forward+backward passes at the minibatch, k = 1 with a shared encoder, else 2.
    """
    default_variant = {"nature_cnn": "channels_first", "impala_resnet": "channels_last"}
    rows = []
    for (env, n, net, ov), r in zip(cases, results["ppo"], strict=True):
        opt = {o.split("=")[0].split(".")[-1]: o.split("=")[1] for o in ov}
        steps, mbs, epochs = int(opt["num_steps"]), int(opt["num_minibatches"]), int(opt["update_epochs"])
        k = 1 if opt.get("shared_encoder") == "true" else 2
        mb = steps * n // mbs
        nrow = next(
            x
            for x in results["networks"]
            if x["net"] == net and x["threads"] == threads and x["variant"] == default_variant[net]
        )
        fwd = nrow[f"fwd@{n}"] if f"fwd@{n}" in nrow else nrow["fwd@64"]
        fwdbwd = nrow.get(f"fwdbwd@{mb}", nrow["fwdbwd@256"])
        net_bound = 1.0 / (k / fwd + k * epochs / fwdbwd)
        raw = next(
            e
            for e in results["envs"]
            if e["env"] == env and e["num_envs"] == n and e["backend"] != "gymnasium"
        )
        t = r["timings_s"]
        rows.append(
            {
                "case": f"{env} x{n} {net}{' shared' if k == 1 else ''}",
                "train_steps_per_s": r["steps_per_s"],
                "raw_env_steps_per_s": raw["steps_per_s"],
                "frac_of_env": round(r["steps_per_s"] / raw["steps_per_s"], 4),
                "net_bound_steps_per_s": round(net_bound, 1),
                "frac_of_net": round(r["steps_per_s"] / net_bound, 2),
                "update_share": round(t["update"] / (t["update"] + t["collect"]), 2),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--parts", nargs="+", default=["networks", "envs", "ppo"])
    p.add_argument("--threads", nargs="+", type=int, default=[1])
    p.add_argument("--compile", action="store_true", help="also try torch.compile (slow to warm up)")
    p.add_argument("--ppo-iterations", type=int, default=3)
    p.add_argument("--ppo-threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    results: dict[str, Any] = {"cpu_threads": torch.get_num_threads()}
    if "networks" in args.parts:
        results["networks"] = bench_networks(args.threads, args.compile, [8, 16, 64], [128, 256])
    # PPO settings: CleanRL ppo_atari (128 steps, 4 minibatches -> 256 at 8 envs, 4 epochs);
    # procgen: Cobbe et al. 2020 use 64 envs x 256 steps, 8 minibatches, 3 epochs; here 16 steps
    # (minibatches of 128) so that an iteration of the IMPALA network finishes in a minute on CPU
    atari = ["algo.num_steps=128", "algo.update_epochs=4"]
    procgen = ["algo.num_steps=16", "algo.num_minibatches=8", "algo.update_epochs=3", "algo.gamma=0.999"]
    shared = ["algo.shared_encoder=true"]
    ppo_cases = [
        ("atari_pong", 8, "nature_cnn", [*atari, "algo.num_minibatches=4"]),
        ("atari_pong", 8, "nature_cnn", [*atari, "algo.num_minibatches=4", *shared]),
        ("atari_pong", 16, "nature_cnn", [*atari, "algo.num_minibatches=8", *shared]),
        ("procgen_coinrun", 64, "impala_resnet", [*procgen, *shared]),
    ]
    if "envs" in args.parts:
        torch.set_num_threads(1)
        envs = []
        for env, n, backend in [
            ("atari_pong", 8, "native"),
            ("atari_pong", 16, "native"),
            ("atari_pong", 8, "gymnasium"),
            ("procgen_coinrun", 64, "gym3"),
        ]:
            kw = {"backend": backend} if env.startswith("atari") else {}
            rate = bench_env(env, n, 400 if n < 64 else 200, kw)
            envs.append({"env": env, "num_envs": n, "backend": backend, "steps_per_s": round(rate)})
            print(json.dumps(envs[-1]), flush=True)
        results["envs"] = envs
    if "ppo" in args.parts:
        ppo = []
        for env, n, net, ov in ppo_cases:
            steps = int(next(o for o in ov if o.startswith("algo.num_steps=")).split("=")[1])
            r = bench_ppo(env, net, n, args.ppo_iterations * steps * n, ov, args.ppo_threads)
            r.update(
                {"env": env, "num_envs": n, "network": net, "shared_encoder": bool(set(shared) & set(ov))}
            )
            r["threads"] = args.ppo_threads
            ppo.append(r)
            print(json.dumps(r), flush=True)
        results["ppo"] = ppo
    if "networks" in results and "envs" in results and "ppo" in results:
        results["summary"] = summarize(results, ppo_cases, args.ppo_threads)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
