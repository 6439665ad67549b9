"""Network zoo throughput: parameters, forward and forward+backward samples/s per network.

    python benchmarks/network_zoo.py                        # every network, batch 256, CPU, 1 thread
    python benchmarks/network_zoo.py --threads 2 --device cuda --only impala mobilenet
    python benchmarks/network_zoo.py --batch 2 --iters 1    # smoke run (no figures)
    python benchmarks/network_zoo.py --cores                # recurrent cores too

Each network runs at its native input sizes: Atari ``[4, 84, 84]`` and Procgen ``[3, 64, 64]``
uint8 pixels (entity-transformer: ``[16, 8]`` floats). Forward is under ``torch.no_grad`` (acting);
forward+backward includes an Adam step on ``sum(features^2)`` (learning). Cores take ``[T=32, B, 256]``
feature sequences; their samples are ``T * B`` steps. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import multiprocessing
import time
from collections.abc import Callable
from typing import Any

import torch

ATARI, PROCGEN, ENTITIES = (4, 84, 84), (3, 64, 64), (16, 8)

# (label, network, overrides, shapes)
NETWORKS: list[tuple[str, str, dict[str, Any], list[tuple[int, ...]]]] = [
    ("nature_cnn", "nature_cnn", {}, [ATARI]),
    ("nature_cnn block=se", "nature_cnn", {"block": "se"}, [ATARI]),
    ("impala_resnet", "impala_resnet", {}, [PROCGEN, ATARI]),
    ("impala_resnet block=se", "impala_resnet", {"block": "se"}, [PROCGEN]),
    ("impala_resnet block=cbam", "impala_resnet", {"block": "cbam"}, [PROCGEN]),
    ("impala_resnet self_attention", "impala_resnet", {"self_attention": True}, [PROCGEN]),
    ("impala_resnet batch_norm", "impala_resnet", {"batch_norm": True}, [PROCGEN]),
    ("impala_resnet spectral_norm", "impala_resnet", {"spectral_norm": True}, [PROCGEN]),
    ("impala_resnet random_conv", "impala_resnet", {"random_conv": True}, [PROCGEN]),
    ("resnet", "resnet", {}, [PROCGEN, ATARI]),
    ("mobilenet v1", "mobilenet", {"version": "v1"}, [PROCGEN, ATARI]),
    ("mobilenet v2", "mobilenet", {"version": "v2"}, [PROCGEN, ATARI]),
    ("mobilenet v3", "mobilenet", {"version": "v3"}, [PROCGEN, ATARI]),
    ("transformer", "transformer", {}, [PROCGEN, ATARI]),
    ("transformer (entities)", "transformer", {}, [ENTITIES]),
]
CORES = ["lstm", "gru", "dnc", "transformer"]


def rate(fn: Callable[[], None], samples: int, iters: int | None, min_s: float) -> float:
    """Samples/s of ``fn`` after a warm-up (at least two calls and a quarter of ``min_s``: the first
    network timed at a new input size otherwise pays for oneDNN's kernel selection and the
    allocator's growth): ``iters`` calls, or as many as fit in ``min_s``."""
    fn()
    fn()
    t0 = time.perf_counter()
    while not iters and time.perf_counter() - t0 < min_s / 4:
        fn()
    n, t0 = 0, time.perf_counter()
    while (n < iters) if iters else (time.perf_counter() - t0 < min_s):
        fn()
        n += 1
    return n * samples / (time.perf_counter() - t0)


def bench_network(
    name: str, overrides: dict[str, Any], shape: tuple[int, ...], args: argparse.Namespace
) -> dict[str, Any]:
    from d2rl import registry

    spec = registry.get_network(name)
    net = spec.build(dataclasses.replace(spec.config_class(), **overrides), shape).to(args.device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    b = args.batch
    if len(shape) == 3:
        x = torch.randint(0, 256, (b, *shape), dtype=torch.uint8, device=args.device)
    else:
        x = torch.randn(b, *shape, device=args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def fwd() -> None:
        with torch.no_grad():
            net(x)
        sync()

    def fwdbwd() -> None:
        opt.zero_grad()
        net(x).square().sum().backward()
        opt.step()
        sync()

    return {
        "params": sum(p.numel() for p in net.parameters()),
        "fwd": rate(fwd, b, args.iters, args.min_s),
        "fwdbwd": rate(fwdbwd, b, args.iters, args.min_s),
    }


def bench_core(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from d2rl.modules.recurrent import build_core
    from d2rl.networks import MLPConfig

    cfg = dataclasses.replace(MLPConfig(), core=name, core_size=256)
    core = build_core(cfg, 256)
    assert core is not None
    core = core.to(args.device)
    opt = torch.optim.Adam(core.parameters(), lr=1e-4)
    t, b = 32, args.batch
    x = torch.randn(t, b, 256, device=args.device)
    starts = torch.zeros(t, b, device=args.device)
    state = core.initial_state(b, args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def fwd() -> None:
        with torch.no_grad():
            core(x, state, starts)
        sync()

    def fwdbwd() -> None:
        opt.zero_grad()
        core(x, state, starts)[0].square().sum().backward()
        opt.step()
        sync()

    return {
        "params": sum(p.numel() for p in core.parameters()),
        "fwd": rate(fwd, t * b, args.iters, args.min_s),
        "fwdbwd": rate(fwdbwd, t * b, args.iters, args.min_s),
    }


def isolated(fn: Callable[..., dict[str, Any]], *fn_args: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Run one measurement in a fresh process: in one long process the forward rates of later
    networks came out up to 60% higher than the same network measured alone (the allocator's and
    oneDNN's state left by earlier networks), which made identical architectures look different."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_worker, fn, fn_args, args).result()


def _worker(fn: Callable[..., dict[str, Any]], fn_args: tuple[Any, ...], args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return fn(*fn_args, args)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument(
        "--iters", type=int, default=None, help="timed calls (default: as many as fit in --min-s)"
    )
    parser.add_argument("--min-s", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", nargs="*", default=None, help="labels containing any of these words")
    parser.add_argument("--cores", action="store_true", help="also time the recurrent cores")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    print(f"batch {args.batch}, device {args.device}, {args.threads} thread(s), torch {torch.__version__}\n")
    print("| network | input | params | forward samples/s | fwd+bwd samples/s |")
    print("|---|---|---:|---:|---:|")
    for label, name, overrides, shapes in NETWORKS:
        if args.only and not any(word in label for word in args.only):
            continue
        for shape in shapes:
            r = isolated(bench_network, name, overrides, shape, args=args)
            dims = "x".join(map(str, shape))
            print(
                f"| {label} | {dims} | {r['params']:,} | {r['fwd']:,.0f} | {r['fwdbwd']:,.0f} |", flush=True
            )
    if args.cores:
        print("\n| core (256 units, in 256) | sequence | params | forward steps/s | fwd+bwd steps/s |")
        print("|---|---|---:|---:|---:|")
        for name in CORES:
            r = isolated(bench_core, name, args=args)
            print(
                f"| {name} | 32x{args.batch} | {r['params']:,} | {r['fwd']:,.0f} | {r['fwdbwd']:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
