"""Exact resume: a run of 2N env steps, and the same run resumed in a new process from its
checkpoint at N with ``d2rl resume=<run dir>``, end with bit-identical parameters, optimizer state,
replay (with priorities), Loop counters and env state (CPU, ``trainer.deterministic=true``).

Run B is run A's folder as it stood after N steps (config + the checkpoint written at N), so
both halves of the comparison come from the same first N steps; only the process differs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from d2rl import checkpoint

D2RL = str(Path(sys.executable).parent / "d2rl")
QUIET = [
    "trainer.progress_bar=false",
    "trainer.eval_period_env_steps=0",
    "trainer.final_eval_episodes=1",
    "logger.learning_curve=false",
    "logger.tensorboard=false",
    "trainer.deterministic=true",
]

# (algo, overrides, N): N env steps before the checkpoint the resumed run starts from. Off-policy
# cases start learning before N so both halves update.
CASES: dict[str, tuple[list[str], int]] = {
    "ppo": (["algo=ppo", "env=cartpole", "algo.num_steps=64"], 512),
    "a2c": (["algo=a2c", "env=cartpole"], 200),
    "dqn_prioritized": (
        [
            "algo=dqn",
            "env=cartpole",
            "replay=prioritized",
            "replay.capacity=2000",
            "algo.learning_starts_env_steps=200",
        ],
        600,
    ),
    # the replay (with priorities) in checkpoints/replay_<step>.pt beside the step file
    "dqn_prioritized_separate_file": (
        [
            "algo=dqn",
            "env=cartpole",
            "replay=prioritized",
            "replay.capacity=2000",
            "replay.separate_file=true",
            "algo.learning_starts_env_steps=200",
        ],
        600,
    ),
    # ALE state cloning (the gymnasium backend): a game with lives and FIRE, sticky actions (the
    # emulator's RNG), no-op starts; the replay stores frames once (frame dedup)
    "dqn_atari_breakout": (
        [
            "algo=dqn",
            "env=atari_breakout",
            "env.kwargs.backend=gymnasium",
            "env.kwargs.repeat_action_probability=0.25",
            "env.num_envs=2",
            "env.max_episode_steps=400",
            "replay.capacity=2000",
            "algo.learning_starts_env_steps=256",
            "algo.target_update_period_env_steps=256",
        ],
        512,
    ),
    "sac": (
        ["algo=sac", "env=pendulum", "algo.learning_starts_env_steps=100", "replay.capacity=2000"],
        300,
    ),
    "td3": (
        ["algo=td3", "env=pendulum", "algo.learning_starts_env_steps=100", "replay.capacity=2000"],
        300,
    ),
    "ppo_lstm": (
        ["algo=ppo", "network.core=lstm", "env=cartpole", "env.num_envs=4", "algo.num_steps=32"],
        256,
    ),
    # N at the end of a PPG phase (n_pi rollouts + the auxiliary phase): stored rollouts are not saved
    "ppg": (["algo=ppg", "env=cartpole", "env.num_envs=4", "algo.num_steps=32", "algo.n_pi=2"], 256),
    "daac": (["algo=daac", "env=cartpole", "env.num_envs=4", "algo.num_steps=32"], 256),
    "rnd": (["algo=rnd", "env=cartpole", "env.num_envs=4", "algo.num_steps=32"], 256),
    "r2d2": (
        ["algo=r2d2", "env=cartpole", "algo.learning_starts_env_steps=200", "replay.capacity=2000"],
        600,
    ),
    # the presets with state of their own: noisy nets + C51 + n-step + priorities, FQF's second
    # (fraction) optimizer, Munchausen IQN, SAC-discrete, Tsallis AC, DDPG's OU noise per env
    "rainbow": (
        ["algo=rainbow", "env=cartpole", "replay=prioritized", "replay.capacity=2000",
         "algo.learning_starts_env_steps=200"],
        600,
    ),
    "fqf": (["algo=fqf", "env=cartpole", "replay.capacity=2000", "algo.learning_starts_env_steps=200"], 600),
    "miqn": (["algo=miqn", "env=cartpole", "replay.capacity=2000", "algo.learning_starts_env_steps=200"], 600),
    "iqn": (["algo=iqn", "env=cartpole", "replay.capacity=2000", "algo.learning_starts_env_steps=200"], 600),
    "mdqn": (["algo=mdqn", "env=cartpole", "replay.capacity=2000", "algo.learning_starts_env_steps=200"], 600),
    "sac_discrete": (
        ["algo=sac_discrete", "env=cartpole", "replay.capacity=2000", "algo.learning_starts_env_steps=200"],
        600,
    ),
    "tac": (["algo=tac", "env=pendulum", "algo.learning_starts_env_steps=100", "replay.capacity=2000"], 300),
    "ddpg": (["algo=ddpg", "env=pendulum", "algo.learning_starts_env_steps=100", "replay.capacity=2000"], 300),
}
# the four the issue names (and Atari, the suite with emulator state) run by default; the other
# families are slow-marked
REQUIRED = ("ppo", "a2c", "dqn_prioritized", "sac", "dqn_prioritized_separate_file", "dqn_atari_breakout")


def run_d2rl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run(
        [D2RL, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def flatten(x: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(x, dict):
        return {k: v for key, val in x.items() for k, v in flatten(val, f"{prefix}/{key}").items()}
    if isinstance(x, (list, tuple)):
        return {k: v for i, val in enumerate(x) for k, v in flatten(val, f"{prefix}/{i}").items()}
    return {prefix: x}


def differences(a: Any, b: Any) -> list[str]:
    fa, fb = flatten(a), flatten(b)
    out = sorted(set(fa) ^ set(fb))
    for k in set(fa) & set(fb):
        x, y = fa[k], fb[k]
        same = torch.equal(x, y) if torch.is_tensor(x) and torch.is_tensor(y) else x == y
        if not same:
            out.append(k)
    return sorted(out)


def truncated_copy(run: Path, at: Path, dest: Path) -> None:
    """``run`` as it stood when checkpoint ``at`` was its last."""
    (dest / "checkpoints").mkdir(parents=True)
    shutil.copy(run / "config.yaml", dest / "config.yaml")
    shutil.copy(at, dest / "checkpoints" / at.name)
    replay = at.with_name(at.name.replace("step_", "replay_", 1))
    if replay.exists():
        shutil.copy(replay, dest / "checkpoints" / replay.name)
    os.link(dest / "checkpoints" / at.name, dest / "checkpoints" / checkpoint.LAST)


@pytest.mark.parametrize(
    "case", [c if c in REQUIRED else pytest.param(c, marks=pytest.mark.slow) for c in sorted(CASES)]
)
def test_resumed_run_is_bit_identical(tmp_path: Path, case: str) -> None:
    overrides, n = CASES[case]
    full = tmp_path / "full"
    done = run_d2rl(
        *overrides,
        *QUIET,
        f"trainer.total_env_steps={2 * n}",
        f"trainer.checkpoint_period_env_steps={n}",
        f"output_dir={full}",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    steps = checkpoint.step_files(full / "checkpoints")
    assert len(steps) == 2, steps  # one at N (the period crossed), one at the end
    resumed = tmp_path / "resumed"
    truncated_copy(full, steps[0], resumed)
    again = run_d2rl(f"resume={resumed}", "trainer.progress_bar=false")
    assert again.returncode == 0, again.stderr[-2000:]
    log = again.stdout + again.stderr
    assert "resuming" in log and "exactly" in log, log[-2000:]

    a = checkpoint.load(full / "checkpoints" / checkpoint.LAST)
    b = checkpoint.load(resumed / "checkpoints" / checkpoint.LAST)
    if "separate_file" in case:  # the step files hold no replay; the replay files do, identically
        assert a["storage"] == {} and a["storage_file"] == f"replay_{a['loop']['env_steps']:012d}.pt"
        assert (full / "checkpoints" / steps[0].name.replace("step_", "replay_")).is_file()
        a["storage"] = checkpoint.load_storage(a, full / "checkpoints" / checkpoint.LAST)
        b["storage"] = checkpoint.load_storage(b, resumed / "checkpoints" / checkpoint.LAST)
        assert a["storage"] and b["storage"]  # non-empty: the buffer and its priorities
    assert a["loop"]["env_steps"] == b["loop"]["env_steps"] >= 2 * n
    for key in ("learner", "policy", "optimizers", "storage", "env", "rng"):
        assert differences(a[key], b[key]) == [], key
    loop_diff = [k for k in differences(a["loop"], b["loop"])]
    assert loop_diff == [], loop_diff
    # the first half really trained: parameters moved between N and 2N
    first = checkpoint.load(steps[0])
    assert differences(first["learner"], a["learner"]) != []


def test_crafted_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    """Loading never unpickles: a file whose unpickling calls os.system is refused, and the
    command it carries does not run."""
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    bad = run / "checkpoints" / checkpoint.LAST
    torch.save({checkpoint.FORMAT_KEY: checkpoint.FORMAT_VERSION, "payload": Exploit()}, bad)
    with pytest.raises(checkpoint.D2RLError, match="not a readable d2rl checkpoint"):
        checkpoint.load(run)
    assert not marker.exists()
    out = run_d2rl(f"resume={run}", timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().startswith("d2rl: error:") and "Traceback" not in out.stderr
    assert not marker.exists()
