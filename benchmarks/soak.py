"""Soak test: a long off-policy run with a full replay. Memory must stay flat once the replay is
full, env steps/s must not decay, and the run folder must stay bounded (checkpoint retention).

    python benchmarks/soak.py --minutes 20                      # the real soak (a quiet machine)
    python benchmarks/soak.py --minutes 1 --out /tmp/soak.json  # a check that the script works

One real ``d2rl`` process (DQN on CartPole by default: ``replay.capacity`` transitions fill in the
first minute or two, then every insert overwrites), checkpoints every ``--checkpoint-period`` env
steps with ``trainer.keep_checkpoints=K``, stopped with SIGTERM after ``--minutes`` (the graceful
stop writes a last checkpoint). Every ``--sample-s`` seconds it samples the process's resident
memory (VmRSS, and PSS, which counts shared pages such as Ray's object store once, of it and
its descendants: a local Ray cluster the run starts is among them) and the run folder's size; afterwards it reads env steps
and wall time from the run's metrics.csv. Reported (JSON to ``--out`` and stdout):

- ``rss_slope_mb_per_min``: least-squares slope of RSS against time after the replay is full
  (and after ``--settle-s`` more, for allocator warm-up); flat is |slope| well below 1 MB/min;
- ``anon_slope_mb_per_min`` (and per process, and over the second half): the same for the
  processes' own heaps (RssAnon), which is where a leak shows. PSS also counts the pages of Ray's
  object store that a process has touched: those grow while the store places new objects (a
  checkpoint's replay, at each pull) at offsets not used before, then level off, so a Ray run's
  PSS slope over a short soak is not a leak by itself; ``shmem_mb_first_last_max`` is the
  machine's shared memory, the object store's pages among it;
- ``env_steps_per_s_by_window``: throughput in ``--windows`` equal windows from the moment the
  replay is full to the end, and the ratio last/first (1.0 = no decay);
- ``run_dir_mb_max`` and ``checkpoint_files_max``: bounded by retention (K step files, last.pt and
  best.pt are hard links to them or their own file).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a local Ray cluster started by the run is among them)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            continue
    return out


def _status_kb(pid: int, key: str, name: str = "status") -> float:
    """A ``kB`` field of /proc/<pid>/<name> (``pid`` 0: /proc/<name>)."""
    try:
        for line in Path(f"/proc/{pid}/{name}" if pid else f"/proc/{name}").read_text().splitlines():
            if line.startswith(key):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def rss_mb(procs: list[int]) -> float:
    """Resident memory of ``procs`` (a run's ``_tree``), MB (Linux /proc). Shared pages (Ray's
    object store) count once per process that maps them."""
    return sum(_status_kb(p, "VmRSS:") for p in procs) / 1024


def process_name(pid: int) -> str:
    """``ray::ReplayShard``, ``raylet``, ``gcs_server``, ``d2rl``, ...: what a process is."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    first = argv[0].decode(errors="replace")
    if first.startswith("ray::"):  # the title names the running method too: ray::EnvActor.collect
        return first.split()[0].split(".")[0]
    exe = Path(first).name
    if exe.startswith("python") and len(argv) > 1:
        script = next((a.decode(errors="replace") for a in argv[1:] if a and not a.startswith(b"-")), "")
        return Path(script).name or exe
    return exe


def by_process(procs: list[int], key: str, name: str = "status") -> dict[str, float]:
    """``key`` (MB) summed per process name: which part of a Ray run holds the memory. ``Pss:``
    (smaps_rollup) splits shared pages among the processes that map them; ``RssAnon:`` (status)
    is a process's own heap, without the shared pages of Ray's object store."""
    out: dict[str, float] = {}
    for p in procs:
        proc = process_name(p)
        out[proc] = out.get(proc, 0.0) + _status_kb(p, key, name) / 1024
    return out


def shmem_mb() -> float:
    """The machine's shared memory in use (``Shmem`` of /proc/meminfo), MB: Ray's object store
    lives there, and its pages once touched stay allocated until Ray stops."""
    return _status_kb(0, "Shmem:", "meminfo") / 1024


def folder_mb(root: Path) -> tuple[float, int]:
    """Size (hard links counted once) and the number of checkpoint files."""
    seen: set[int] = set()
    size, ckpts = 0, 0
    for p in root.rglob("*"):
        try:
            st = p.stat()
        except OSError:
            continue
        if not p.is_file():
            continue
        if p.suffix == ".pt":
            ckpts += 1
        if st.st_ino not in seen:
            seen.add(st.st_ino)
            size += st.st_size
    return size / 2**20, ckpts


def slope_per_min(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 3:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    return 60 * sum((t - mt) * (y - my) for t, y in points) / var


def read_progress(metrics_csv: Path) -> list[tuple[float, int]]:
    """(wall_time s, env_step) rows of the run's metrics.csv."""
    if not metrics_csv.exists():
        return []
    rows = []
    with metrics_csv.open() as f:
        for row in csv.DictReader(f):
            try:
                rows.append((float(row["wall_time"]), int(float(row["env_step"]))))
            except (KeyError, TypeError, ValueError):
                continue
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--sample-s", type=float, default=5.0)
    ap.add_argument("--capacity", type=int, default=100_000, help="replay.capacity (transitions)")
    ap.add_argument("--checkpoint-period", type=int, default=50_000, help="env steps between checkpoints")
    ap.add_argument("--keep", type=int, default=3, help="trainer.keep_checkpoints")
    ap.add_argument("--settle-s", type=float, default=30.0, help="ignored after the replay fills")
    ap.add_argument("--windows", type=int, default=5)
    ap.add_argument("--run-dir", type=Path, default=None, help="default: a temporary folder")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "overrides",
        nargs="*",
        # exploration over the first 100k env steps (the run's nominal length is 1e9 steps, and the
        # schedule is a fraction of it: without this, epsilon stays ~1 for the whole soak)
        default=["algo=dqn", "env=cartpole", "algo.exploration_fraction=0.0001"],
        help="d2rl overrides",
    )
    args = ap.parse_args()

    run = args.run_dir or Path(tempfile.mkdtemp(prefix="d2rl_soak_")) / "run"
    cmd = [
        str(Path(sys.executable).parent / "d2rl"),
        *args.overrides,
        f"replay.capacity={args.capacity}",
        "trainer.total_env_steps=1000000000",
        f"trainer.checkpoint_period_env_steps={args.checkpoint_period}",
        f"trainer.keep_checkpoints={args.keep}",
        "trainer.eval_period_env_steps=0",
        "trainer.log_period_env_steps=1000",  # metrics.csv rows for the throughput windows
        "trainer.progress_bar=false",
        "trainer.final_eval_episodes=1",
        "logger.tensorboard=false",
        "logger.learning_curve=false",
        f"output_dir={run}",
    ]
    print("command:", " ".join(cmd), flush=True)
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    samples: list[dict[str, float]] = []
    # the soak's clock starts once training does (start-up excluded; a SIGTERM before the run
    # installed its handlers would kill it without a checkpoint)
    while proc.poll() is None and not (run / "metrics.csv").exists() and time.monotonic() < t0 + 600:
        time.sleep(0.5)
    end = time.monotonic() + 60 * args.minutes
    while proc.poll() is None and time.monotonic() < end:
        time.sleep(args.sample_s)
        mb, files = folder_mb(run)
        procs = _tree(proc.pid)  # one walk of the process tree per sample
        pss = by_process(procs, "Pss:", "smaps_rollup")
        anon = by_process(procs, "RssAnon:")
        samples.append(
            {
                "t": time.monotonic() - t0,
                "rss_mb": rss_mb(procs),
                # PSS splits shared pages between the processes that map them, so the sum over
                # a Ray cluster counts its object store once
                "pss_mb": sum(pss.values()),
                "processes": len(procs),
                "pss_mb_by_process": pss,
                # the processes' own heaps (what a leak grows), and the object store's pages
                "anon_mb": sum(anon.values()),
                "anon_mb_by_process": anon,
                "shmem_mb": shmem_mb(),
                "run_dir_mb": mb,
                "ckpt_files": files,
            }
        )
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    if proc.returncode not in (0, 128 + signal.SIGTERM):
        sys.exit(f"the run failed (exit {proc.returncode}):\n{err[-3000:]}")

    progress = read_progress(run / "metrics.csv")
    # the process clock and the metrics' wall_time differ by the start-up; align on the run's end
    wall_end = progress[-1][0] if progress else 0.0
    offset = samples[-1]["t"] - wall_end if samples and progress else 0.0
    full_at = next((w + offset for w, s in progress if s >= args.capacity), None)
    after = [s for s in samples if full_at is not None and s["t"] >= full_at + args.settle_s]
    flat = [(s["t"], s["rss_mb"]) for s in after]
    flat_pss = [(s["t"], s["pss_mb"]) for s in after]

    def slopes_by_process(key: str) -> dict[str, float | None]:
        names = after[-1][key] if after else {}
        return {n: slope_per_min([(s["t"], s[key].get(n, 0.0)) for s in after]) for n in names}

    half = after[len(after) // 2 :]  # the second half of the steady state: is growth levelling off?
    # throughput in steady state: from the moment the replay is full (updates run at their full
    # rate, every insert overwrites) to the end, in equal windows
    steady = [(w, s) for w, s in progress if s >= args.capacity] or progress
    windows = []
    if len(steady) >= 2:
        span = steady[-1][0] - steady[0][0]
        for i in range(args.windows):
            lo, hi = steady[0][0] + span * i / args.windows, steady[0][0] + span * (i + 1) / args.windows
            inside = [(w, s) for w, s in steady if lo <= w <= hi]
            if len(inside) >= 2 and inside[-1][0] > inside[0][0]:
                windows.append((inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]))
    result: dict[str, Any] = {
        "command": cmd,
        "minutes": args.minutes,
        "loadavg_at_start": load,
        "env_steps": progress[-1][1] if progress else 0,
        "replay_full_at_s": full_at,
        "rss_mb_first_last": [samples[0]["rss_mb"], samples[-1]["rss_mb"]] if samples else None,
        "rss_mb_max": max((s["rss_mb"] for s in samples), default=None),
        "rss_slope_mb_per_min": slope_per_min(flat),
        "rss_points_after_full": len(flat),
        "pss_mb_first_last": [samples[0]["pss_mb"], samples[-1]["pss_mb"]] if samples else None,
        "pss_slope_mb_per_min": slope_per_min(flat_pss),
        "processes_max": max((s["processes"] for s in samples), default=None),
        # per process name: PSS slope after the replay is full (which process grows, if any)
        "pss_slope_mb_per_min_by_process": slopes_by_process("pss_mb_by_process"),
        "pss_slope_mb_per_min_second_half": slope_per_min([(s["t"], s["pss_mb"]) for s in half]),
        "anon_mb_first_last": [after[0]["anon_mb"], after[-1]["anon_mb"]] if after else None,
        "anon_slope_mb_per_min": slope_per_min([(s["t"], s["anon_mb"]) for s in after]),
        "anon_slope_mb_per_min_second_half": slope_per_min([(s["t"], s["anon_mb"]) for s in half]),
        "anon_slope_mb_per_min_by_process": slopes_by_process("anon_mb_by_process"),
        "shmem_mb_first_last_max": [after[0]["shmem_mb"], after[-1]["shmem_mb"], max(s["shmem_mb"] for s in after)]
        if after
        else None,
        "env_steps_per_s_by_window": [round(w, 1) for w in windows],
        "throughput_last_over_first": round(windows[-1] / windows[0], 3)
        if len(windows) >= 2 and windows[0]
        else None,
        "run_dir_mb_max": max((s["run_dir_mb"] for s in samples), default=None),
        "checkpoint_files_max": max((s["ckpt_files"] for s in samples), default=None),
        "loadavg_at_end": os.getloadavg(),
        "samples": samples,
        "run_dir": str(run),
    }
    text = json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2)
    print(text)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
