"""A catalogue of bad invocations of the real ``d2rl`` and ``d2rl-eval`` commands.

Each must end within seconds with one readable ``d2rl: error:`` line on stderr, a non-zero exit
and no traceback, and leave nothing that a later run would take for a valid checkpoint. The
commands run as subprocesses on a small thread pool (most answer before torch is imported).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from d2rl import checkpoint
from d2rl.errors import D2RLError

BIN = Path(sys.executable).parent
QUIET = ["trainer.progress_bar=false", "trainer.eval_period_env_steps=0", "trainer.final_eval_episodes=1"]
# "within seconds": measured as CPU time (the test box may be heavily loaded); importing torch and
# Lightning costs ~7 CPU s, so 30 s is generous. The wall limit only catches hangs.
CPU_LIMIT_S = 30
WALL_LIMIT_S = 300


@dataclass
class Case:
    name: str
    args: list[str]
    expect: str  # a substring of the error line
    command: str = "d2rl"
    exit_code: int = 2
    wrap: list[str] = field(default_factory=list)  # e.g. a shell with `ulimit -f`
    env: dict[str, str] = field(default_factory=dict)
    extra_lines_ok: bool = False  # a third-party library also writes to stderr (Ray's C++ core)


def _cases() -> list[Case]:
    c = Case
    return [
        # -- names: unknown group options, misspelt keys ------------------------------------------
        c("unknown_env_preset", ["env=cartpol"], "did you mean `env=cartpole`?"),
        c("unknown_algo", ["algo=pp"], "did you mean `algo=ppo`"),
        c("unknown_network", ["network=mlpp"], "did you mean `network=mlp`?"),
        c("unknown_distributed", ["distributed=nope"], "unknown distributed option 'nope'; choose from"),
        c("unknown_replay", ["algo=dqn", "replay=prio"], "unknown replay option 'prio'"),
        c("unknown_experiment", ["experiment=nope"], "unknown experiment 'nope'"),
        c(
            "misspelt_algo_key",
            ["algo=ppo", "algo.lrr=1e-3"],
            "unknown config key 'algo.lrr'; did you mean `algo.lr`?",
        ),
        c("misspelt_trainer_key", ["trainer.totl_env_steps=5"], "did you mean `trainer.total_env_steps`"),
        c("unparsable_override", ["algo.lr=1e-3)"], "cannot parse override"),
        # -- types -----------------------------------------------------------------------------
        c(
            "int_from_word",
            ["trainer.total_env_steps=lots"],
            "trainer.total_env_steps=lots: expected an integer",
        ),
        c("float_from_word", ["algo=ppo", "algo.lr=abc"], "algo.lr=abc: expected a number"),
        c("bool_from_word", ["trainer.progress_bar=maybe"], "expected true or false"),
        # -- ranges and relations (validation.py) ----------------------------------------------
        c("negative_lr", ["algo=ppo", "algo.lr=-1"], "algo.lr must be > 0 (got -1)"),
        c("nan_lr", ["algo=ppo", "algo.lr=nan"], "algo.lr must be a finite number"),
        c(
            "negative_total_steps",
            ["trainer.total_env_steps=-5"],
            "trainer.total_env_steps must be >= 1 (got -5)",
        ),
        c("zero_total_steps", ["trainer.total_env_steps=0"], "trainer.total_env_steps must be >= 1"),
        c("zero_envs", ["env.num_envs=0"], "env.num_envs must be >= 1 (got 0)"),
        c("zero_rollout", ["algo=ppo", "algo.num_steps=0"], "algo.num_steps must be >= 1"),
        c("gamma_above_one", ["algo=ppo", "algo.gamma=1.5"], "algo.gamma must be <= 1 (got 1.5)"),
        c("zero_capacity", ["algo=dqn", "replay.capacity=0"], "replay.capacity must be >= 1"),
        c(
            "batch_over_capacity",
            ["algo=dqn", "algo.batch_size=512", "replay.capacity=100"],
            "algo.batch_size (512) must not exceed replay.capacity (100)",
        ),
        c(
            "minibatches_over_batch",
            ["algo=ppo", "algo.num_minibatches=100000"],
            "must not exceed algo.num_steps",
        ),
        c(
            "negative_alpha",
            ["algo=dqn", "replay=prioritized", "replay.alpha=-0.5"],
            "replay.alpha must be >= 0",
        ),
        c("nan_policy_choice", ["trainer.nan_policy=maybe"], "trainer.nan_policy must be one of stop, skip"),
        c("negative_retention", ["trainer.keep_checkpoints=-1"], "trainer.keep_checkpoints must be >= 0"),
        c(
            "vectorization_choice",
            ["env.vectorization=threads"],
            "env.vectorization must be one of sync, async",
        ),
        # -- envs and algorithms that do not fit -------------------------------------------------
        c(
            "unknown_env_id",
            ["env=gym", "env.id=NoSuchEnv-v9", *QUIET],
            "unknown gymnasium env id 'NoSuchEnv-v9'",
        ),
        c("discrete_algo_continuous_env", ["algo=dqn", "env=pendulum", *QUIET], "has a box action space"),
        c(
            "pixel_network_vector_env",
            ["network=nature_cnn", "env=cartpole", *QUIET],
            "takes pixels observations",
        ),
        c(
            "missing_optional_dependency",
            ["env=lunarlander", *QUIET],
            "pip install 'd2rl[box2d]'",
            env={"PYTHONPATH": "{block}", "D2RL_TEST_BLOCK_MODULES": "Box2D"},
        ),
        # -- checkpoints ---------------------------------------------------------------------------
        c("resume_missing_dir", ["resume={tmp}/no/such/run"], "does not exist"),
        c("resume_dir_without_checkpoint", ["resume={empty}"], "no checkpoint in"),
        c("resume_corrupted", ["resume={corrupt}"], "is not a readable d2rl checkpoint"),
        c("resume_truncated", ["resume={truncated}"], "is not a readable d2rl checkpoint"),
        c("resume_foreign", ["resume={foreign}"], "is not a d2rl checkpoint"),
        c("resume_code_execution", ["resume={pickle}"], "is not a readable d2rl checkpoint"),
        c(
            "resume_with_other_overrides",
            ["resume={good}", "algo.lr=1"],
            "drop the other overrides: algo.lr=1",
        ),
        c("load_other_algorithms_weights", ["algo=dqn", "load_from={good}", *QUIET], "do not fit"),
        # -- the run folder ----------------------------------------------------------------------
        c("read_only_output_dir", ["output_dir={readonly}/run", *QUIET], "cannot write"),
        c(
            "disk_full",
            [
                "trainer.total_env_steps=512",
                "trainer.checkpoint_period_env_steps=256",
                "output_dir={out}",
                *QUIET,
            ],
            "could not write checkpoint",
            wrap=["bash", "-c", 'trap \'\' XFSZ; ulimit -f 40; exec "$0" "$@"'],
        ),
        # -- distributed ---------------------------------------------------------------------------
        c(
            "unreachable_ray_address",
            [
                "distributed=apex",
                "algo=dqn",
                "distributed.address=10.255.255.1:6379",
                "distributed.connect_timeout_s=2",
                *QUIET,
            ],
            "Ray cluster at",
            extra_lines_ok=True,
        ),
        c(
            "distributed_total_episodes",
            ["distributed=apex", "algo=dqn", "trainer.total_episodes=10", *QUIET],
            "trainer.total_episodes is not supported with distributed=apex",
        ),
        c(
            "distributed_more_cpus_than_the_cluster",
            [
                "distributed=apex",
                "algo=dqn",
                "distributed.num_actors=4",
                "distributed.num_cpus=2",
                *QUIET,
            ],
            "asks Ray for 2.25 CPUs",
            extra_lines_ok=True,
        ),
        # -- d2rl-eval -----------------------------------------------------------------------------
        c("eval_without_checkpoint", [], "needs checkpoint=", command="d2rl-eval"),
        c("eval_missing_checkpoint", ["checkpoint={tmp}/nope.pt"], "does not exist", command="d2rl-eval"),
        c(
            "eval_corrupted",
            ["checkpoint={corrupt}"],
            "is not a readable d2rl checkpoint",
            command="d2rl-eval",
        ),
        c(
            "eval_truncated",
            ["checkpoint={truncated}"],
            "is not a readable d2rl checkpoint",
            command="d2rl-eval",
        ),
        c("eval_foreign", ["checkpoint={foreign}"], "is not a d2rl checkpoint", command="d2rl-eval"),
        c(
            "eval_zero_episodes",
            ["checkpoint={good}", "episodes=0"],
            "episodes must be >= 1",
            command="d2rl-eval",
        ),
        c(
            "eval_misspelt_key",
            ["checkpoint={good}", "episdes=3"],
            "did you mean `episodes`?",
            command="d2rl-eval",
        ),
        c(
            "eval_wrong_type",
            ["checkpoint={good}", "deterministic=maybe"],
            "expected true or false",
            command="d2rl-eval",
        ),
    ]


CASES = _cases()
# each in its own `d2rl`/`d2rl-eval` process; the others run batched through the same entry
# points (cli.main / cli.eval_main, as the console scripts call them) in two processes
OWN_PROCESS = {
    "unknown_env_preset",
    "misspelt_algo_key",
    "int_from_word",
    "negative_lr",
    "resume_corrupted",
    "eval_corrupted",
    "missing_optional_dependency",  # a module blocked from interpreter start-up
    "read_only_output_dir",  # run as another user
    "disk_full",  # under `ulimit -f`
    "unreachable_ray_address",
}
# cases that import torch and build envs (the second batch process)
HEAVY = {"discrete_algo_continuous_env", "pixel_network_vector_env", "unknown_env_id"}

DRIVER = """
import contextlib, io, json, sys, time, traceback
from d2rl import cli
out = []
for command, argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    sys.argv = [command, *argv]
    code, t0 = 0, time.process_time()
    with contextlib.redirect_stderr(err):
        try:
            (cli.main if command == "d2rl" else cli.eval_main)()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            err.write(traceback.format_exc())
            code = 1
    out.append({"code": code, "stderr": err.getvalue(), "cpu_s": time.process_time() - t0})
print("@@RESULTS@@" + json.dumps(out))
"""


def _make_files(root: Path) -> dict[str, str]:
    """A good PPO run (through the real command) and bad checkpoints made from it."""
    good = root / "good"
    out = subprocess.run(
        [str(BIN / "d2rl"), "trainer.total_env_steps=64", "algo.num_steps=8", f"output_dir={good}", *QUIET],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    data = (good / "checkpoints" / checkpoint.LAST).read_bytes()

    def run_with(name: str, payload: bytes) -> str:
        d = root / name
        (d / "checkpoints").mkdir(parents=True)
        (d / "checkpoints" / checkpoint.LAST).write_bytes(payload)
        return str(d)

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {root / 'pwned'}",))

    foreign = root / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    crafted = root / "crafted.pt"
    torch.save({checkpoint.FORMAT_KEY: checkpoint.FORMAT_VERSION, "x": Exploit()}, crafted)
    (root / "empty").mkdir()
    readonly = root / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    block = root / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(
        "import os, sys\n"
        "_blocked = set(filter(None, os.environ.get('D2RL_TEST_BLOCK_MODULES', '').split(',')))\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in _blocked:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    return {
        "tmp": str(root),
        "good": str(good),
        "corrupt": run_with("corrupt", os.urandom(4096)),
        "truncated": run_with("truncated", data[: len(data) // 2]),
        "foreign": run_with("foreign_run", foreign.read_bytes()),
        "pickle": run_with("pickle_run", crafted.read_bytes()),
        "empty": str(root / "empty"),
        "readonly": str(readonly),
        "block": str(block),
    }


def _args(case: Case, files: dict[str, str], root: Path) -> tuple[list[str], Path]:
    out_dir = root / "out" / case.name
    subs = {**files, "out": str(out_dir)}
    args = [a.format(**subs) for a in case.args]
    if case.command == "d2rl" and not any(a.startswith(("output_dir=", "resume=")) for a in args):
        args.append(f"output_dir={out_dir}")
    return args, out_dir


def _run_batch(cases: list[Case], files: dict[str, str], root: Path) -> dict[str, dict[str, Any]]:
    import json

    jobs = [(c.command, _args(c, files, root)[0]) for c in cases]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(jobs)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        check=False,
        cwd=root,
    )
    marker = proc.stdout.rfind("@@RESULTS@@")
    assert marker >= 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    results = json.loads(proc.stdout[marker + len("@@RESULTS@@") :])
    return {
        c.name: {
            "proc": subprocess.CompletedProcess(c.command, r["code"], "", r["stderr"]),
            "cpu_s": r["cpu_s"],
            "wall_s": 0.0,
            "out_dir": _args(c, files, root)[1],
        }
        for c, r in zip(cases, results, strict=True)
    }


def _run(case: Case, files: dict[str, str], root: Path) -> dict[str, Any]:
    args, out_dir = _args(case, files, root)
    cmd = [*case.wrap, str(BIN / case.command), *args]
    if case.name == "read_only_output_dir" and os.geteuid() == 0:  # root writes anywhere: drop to nobody
        if shutil.which("setpriv") is None:
            return {"skip": "running as root without setpriv"}
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    subs = {**files, "out": str(out_dir)}
    env = {**os.environ, **{k: v.format(**subs) for k, v in case.env.items()}}
    env.pop("HYDRA_FULL_ERROR", None)
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env, cwd=root)
        try:
            _, status, usage = os.wait4(child.pid, 0)  # CPU time of the command and its children
        finally:
            child.returncode = 0  # reaped here; keep Popen from waiting again
        out.seek(0)
        err.seek(0)
        code = os.waitstatus_to_exitcode(status)
        proc = subprocess.CompletedProcess(cmd, code, out.read(), err.read())
    cpu = usage.ru_utime + usage.ru_stime
    return {"proc": proc, "cpu_s": cpu, "wall_s": time.perf_counter() - t0, "out_dir": out_dir}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("bad_input")
    files = _make_files(root)
    light = [c for c in CASES if c.name not in OWN_PROCESS and c.name not in HEAVY]
    heavy = [c for c in CASES if c.name in HEAVY]
    with ThreadPoolExecutor(max_workers=4) as pool:
        batches = [pool.submit(_run_batch, light, files, root), pool.submit(_run_batch, heavy, files, root)]
        futures = {c.name: pool.submit(_run, c, files, root) for c in CASES if c.name in OWN_PROCESS}
        out = {name: f.result() for name, f in futures.items()}
        for b in batches:
            out.update(b.result())
    out["_files"] = {"files": files}
    return out


def _loads(p: Path) -> bool:
    try:
        checkpoint.load(p)
    except D2RLError:
        return False
    return True


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_invocation_ends_in_one_line(case: Case, results: dict[str, dict[str, Any]]) -> None:
    r = results[case.name]
    if "skip" in r:
        pytest.skip(r["skip"])
    proc: subprocess.CompletedProcess[str] = r["proc"]
    err_lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == case.exit_code, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    assert err_lines and err_lines[-1].startswith("d2rl: error: "), proc.stderr[-3000:]
    assert case.expect in err_lines[-1], err_lines[-1]
    assert "+algo" not in proc.stderr and "To append to your config" not in proc.stderr
    assert len(err_lines[-1]) < 400, err_lines[-1]  # readable: no list of every option
    if not case.extra_lines_ok:
        assert len(err_lines) == 1, proc.stderr[-3000:]
    assert r["cpu_s"] < CPU_LIMIT_S and r["wall_s"] < WALL_LIMIT_S, (r["cpu_s"], r["wall_s"])
    # nothing a later run would take for a valid checkpoint
    ckpt_dir = r["out_dir"] / "checkpoints"
    for p in ckpt_dir.glob("*.pt") if ckpt_dir.is_dir() else []:
        assert _loads(p), p
    assert not (Path(results["_files"]["files"]["tmp"]) / "pwned").exists()


def test_hydra_full_error_keeps_the_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run(
        [str(BIN / "d2rl"), "algo=ppo", "algo.lrr=1e-3", f"output_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """ENOSPC in the middle of a checkpoint write: one D2RLError line, no partial file, the previous
    checkpoint and ``last.pt`` untouched."""
    ckpt = tmp_path / "checkpoints"
    state = {"algo": "x", "config": "", "learner": {"w": torch.ones(4)}, "loop": {"env_steps": 1}}
    first = checkpoint.save(ckpt, state, 100)
    real_save = torch.save

    def full_disk(obj: Any, f: Any, *a: Any, **k: Any) -> None:
        real_save(obj, f, *a, **k)  # bytes reach the temp file, then the disk fills up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(D2RLError, match="No space left on device"):
        checkpoint.save(ckpt, {**state, "loop": {"env_steps": 2}}, 200)
    monkeypatch.undo()
    assert sorted(p.name for p in ckpt.iterdir()) == [checkpoint.LAST, first.name]
    assert checkpoint.load(tmp_path)["loop"]["env_steps"] == 1
