"""PPG against PPO on Procgen CoinRun (easy, 200 training levels), the same env-step budget each.

    python benchmarks/ppg_procgen.py --steps 1000000 --seeds 1 --out benchmarks/results/ppg_procgen

Each algorithm runs with its Procgen defaults here (conf/tuned/ppo_procgen.yaml: one shared IMPALA
trunk, 64 envs; conf/tuned/ppg_procgen.yaml: separate policy and value networks, 16 envs);
``--num-envs N`` gives both the same number. For each run: training env steps/s, the final policy's
mean return on the training levels and on unseen test levels (``--episodes`` each, stochastic
policy), learning curves (training-episode returns on the training levels, periodic evaluation on
test levels) in ``<out>/curves.png``, and ``<out>/results.json``.

Network-bound limit: IMPALA ResNet forward+backward samples/s, measured here at the batch sizes the
runs use (PPO's and PPG's policy-phase minibatch, PPG's auxiliary minibatch) and forward samples/s at
the acting batch (num_envs). From the passes each algorithm makes per env step (PPO: 1 forward to act
+ update_epochs forward+backward; PPG: 2 forwards to act + E_pi + E_V forward+backward + 1 forward
and E_aux x 2 forward+backward in the auxiliary phase), the env steps/s the network alone allows;
the training speed is reported as a fraction of it. Env stepping, GAE, logging and evaluation
make up the rest.

The paper protocol is 25M env steps (experiment=ppg_procgen / ppo_procgen); read results at a
smaller budget as what this machine can show, not as a reproduction. Verify the script with a tiny
budget: ``--steps 2048 --episodes 1 --tiny``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from d2rl import checkpoint
from d2rl.config import register_configs
from d2rl.evaluation import evaluate
from d2rl.registry import get_network, register_config_nodes
from d2rl.train import load_policy, train

TINY = ["algo.num_steps=16", "network.channels=[4,8,8]", "network.features=32", "algo.n_pi=2"]


def compose_run(algo: str, args: argparse.Namespace, seed: int, out: Path) -> DictConfig:
    overrides = [
        f"algo={algo}",
        "env=procgen_coinrun",
        "network=impala_resnet",
        "env.kwargs.distribution_mode=easy",
        "env.kwargs.num_levels=200",
        "env.kwargs.eval_levels=test",
        f"seed={seed}",
        f"output_dir={out}",
        f"trainer.total_env_steps={args.steps}",
        f"trainer.eval_period_env_steps={max(args.steps // args.evals, 1)}",
        f"trainer.eval_episodes={args.episodes}",
        f"trainer.final_eval_episodes={args.episodes}",
        "trainer.eval_deterministic=false",
        f"trainer.torch_threads={args.torch_threads}",
        "trainer.progress_bar=false",
        "logger.tensorboard=false",
    ]
    overrides += [o.split(":", 1)[1] for o in args.set if o.split(":", 1)[0] == algo]
    if args.num_envs:
        overrides.append(f"env.num_envs={args.num_envs}")
    if args.tiny:
        overrides += [o for o in TINY if algo == "ppg" or "n_pi" not in o]
    GlobalHydra.instance().clear()
    with initialize_config_module("d2rl.conf", version_base="1.3"):
        return compose("config", overrides=overrides)


def rate(fn: Callable[[], None], samples: int, min_s: float) -> float:
    """Samples/s of ``fn`` (one warm-up call, then calls until ``min_s`` seconds)."""
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_s or n < 2:
        fn()
        n += 1
    return samples * n / (time.perf_counter() - t0)


def network_rates(cfg: DictConfig, batches: dict[str, int], min_s: float) -> dict[str, float]:
    """IMPALA ResNet (+ a 15-way head) samples/s: ``fwd@<acting batch>`` and ``fwdbwd@<minibatch>``."""
    torch.set_num_threads(int(cfg.trainer.torch_threads))
    spec = get_network("impala_resnet")
    net_cfg = OmegaConf.to_object(cfg.network)
    encoder = spec.build(net_cfg, (3, 64, 64))
    head = torch.nn.Linear(int(encoder.out_dim), 16)
    opt = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-4)
    out: dict[str, float] = {}
    for name, b in batches.items():
        x = torch.randint(0, 256, (b, 3, 64, 64), dtype=torch.uint8)
        if name.startswith("fwd@"):

            def fwd(x: torch.Tensor = x) -> None:
                with torch.no_grad():
                    head(encoder(x))

            out[name] = rate(fwd, b, min_s)
        else:

            def fwdbwd(x: torch.Tensor = x) -> None:
                opt.zero_grad()
                head(encoder(x)).square().mean().backward()
                opt.step()

            out[name] = rate(fwdbwd, b, min_s)
    return {k: round(v, 1) for k, v in out.items()}


def network_bound(cfg: DictConfig, rates: dict[str, float], env_steps: int) -> float:
    """Env steps/s the network passes alone allow (seconds of network time per env step, inverted).

    PPG's auxiliary phases are counted as they ran: one after every ``n_pi`` rollouts except the
    last (as the paper's code), so a run of R rollouts had ``(R - 1) // n_pi`` of them."""
    a, n = cfg.algo, int(cfg.env.num_envs)
    batch = int(a.num_steps) * n
    act = 1.0 / rates[f"fwd@{n}"]
    fb = 1.0 / rates[f"fwdbwd@{batch // int(a.num_minibatches)}"]
    if a.name == "ppo":
        nets = 1 if a.shared_encoder else 2
        per_step = nets * (act + int(a.update_epochs) * fb)
    else:  # ppg
        aux_fb = 1.0 / rates[f"fwdbwd@{max(1, batch // int(a.aux_minibatches_per_rollout))}"]
        per_step = 2 * act + (int(a.policy_epochs) + int(a.value_epochs)) * fb
        rounds = max(1, env_steps // batch)
        aux_share = ((rounds - 1) // int(a.n_pi)) * int(a.n_pi) / rounds  # env steps an aux phase replayed
        # old policy once; both networks each aux epoch
        per_step += aux_share * (act + int(a.aux_epochs) * 2 * aux_fb)
    return 1.0 / per_step


def curves(run: Path) -> dict[str, list[tuple[float, float]]]:
    train_pts, test_pts = [], []
    with (run / "metrics.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            step = float(row["env_step"])
            if row.get("train/episode_return"):
                train_pts.append((step, float(row["train/episode_return"])))
            if row.get("eval/return_mean"):
                test_pts.append((step, float(row["eval/return_mean"])))
    return {"train_levels": train_pts, "test_levels": test_pts}


def run_one(algo: str, args: argparse.Namespace, seed: int, out: Path) -> dict[str, Any]:
    cfg = compose_run(algo, args, seed, out)
    t0 = time.perf_counter()
    result = train(cfg)
    wall = time.perf_counter() - t0
    summary = json.loads((out / "summary.json").read_text())
    policy, run_cfg = load_policy(checkpoint.load(out))
    row: dict[str, Any] = {
        "algo": algo,
        "seed": seed,
        "env_steps": result["env_steps"],
        "num_envs": int(cfg.env.num_envs),
        "train_env_steps_per_s": summary["env_steps_per_s"],
        "fit_time_s": summary["fit_time_s"],
        "wall_s": round(wall, 1),
        "update_s": summary["timings_s"].get("update"),
    }
    for levels in ("train", "test"):
        env_cfg = OmegaConf.merge(run_cfg.env, {"kwargs": {"eval_levels": levels}})
        returns = evaluate(policy, env_cfg, args.episodes, seed + 20_000, deterministic=False)
        row[f"{levels}_return"] = round(float(returns.mean()), 2)
    batch = int(cfg.algo.num_steps) * int(cfg.env.num_envs)
    batches = {f"fwd@{int(cfg.env.num_envs)}": int(cfg.env.num_envs)}
    batches[f"fwdbwd@{batch // int(cfg.algo.num_minibatches)}"] = batch // int(cfg.algo.num_minibatches)
    if algo == "ppg":
        aux = max(1, batch // int(cfg.algo.aux_minibatches_per_rollout))
        batches[f"fwdbwd@{aux}"] = aux
    rates = network_rates(cfg, batches, args.bench_s)
    bound = network_bound(cfg, rates, int(result["env_steps"]))
    row.update(network_samples_per_s=rates, network_bound_env_steps_per_s=round(bound, 2))
    row["fraction_of_network_bound"] = round(row["train_env_steps_per_s"] / bound, 3)
    row["curves"] = curves(out)
    print(json.dumps({k: v for k, v in row.items() if k != "curves"}), flush=True)
    return row


def plot(rows: list[dict[str, Any]], path: Path, steps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    colors = {"ppo": "tab:blue", "ppg": "tab:red"}
    panels = (("train_levels", "training levels"), ("test_levels", "test levels"))
    for ax, (key, title) in zip(axes, panels, strict=True):
        for r in rows:
            pts = r["curves"][key]
            if pts:
                ax.plot(
                    [x for x, _ in pts],
                    [y for _, y in pts],
                    color=colors[r["algo"]],
                    alpha=0.8,
                    label=f"{r['algo']} seed {r['seed']}",
                )
        ax.set_title(f"CoinRun easy, 200 levels: {title}")
        ax.set_xlabel("env steps")
        ax.legend()
    axes[0].set_ylabel("episode return")
    fig.suptitle(f"PPG vs PPO, {steps:,} env steps (paper: 25M)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--num-envs", type=int, default=0, help="0: each algorithm's Procgen default")
    p.add_argument("--torch-threads", type=int, default=2)
    p.add_argument("--bench-s", type=float, default=5.0, help="seconds per network-rate measurement")
    p.add_argument("--evals", type=int, default=10, help="test-level evaluations during training")
    p.add_argument(
        "--set", nargs="*", default=[], metavar="ALGO:KEY=VALUE",
        help="an override for one algorithm, e.g. ppg:algo.n_pi=4 (say so with the results)",
    )
    p.add_argument("--tiny", action="store_true", help="tiny networks and rollouts: checks the script only")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/ppg_procgen"))
    args = p.parse_args()
    register_configs()
    register_config_nodes()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [
        run_one(algo, args, seed, args.out / f"{algo}_seed{seed}")
        for seed in args.seeds
        for algo in ("ppo", "ppg")
    ]
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    plot(rows, args.out / "curves.png", args.steps)
    for algo in ("ppo", "ppg"):
        sel = [r for r in rows if r["algo"] == algo]

        def mean(k: str, sel: list[dict[str, Any]] = sel) -> float:
            return sum(r[k] for r in sel) / len(sel)

        print(
            f"{algo}: {mean('train_env_steps_per_s'):.1f} env steps/s "
            f"({mean('fraction_of_network_bound'):.0%} of the network bound), "
            f"train levels {mean('train_return'):.2f}, test levels {mean('test_return'):.2f} over seeds {args.seeds}"
        )
    print(f"curves: {args.out / 'curves.png'}")


if __name__ == "__main__":
    main()
