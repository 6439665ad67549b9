"""Ape-X and SEED on Ray through train(): one Ray session for the module (num_cpus=2, no
dashboard); each run is a few thousand CartPole/Pendulum steps with a tiny network."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest

ray = pytest.importorskip("ray")

from d2rl.distributed.exploration import actor_epsilon, actor_noise_scale  # noqa: E402
from d2rl.distributed.replay import ReplayShard  # noqa: E402
from d2rl.train import train  # noqa: E402
from faults import PoisonParameters  # noqa: E402

APEX_DQN = [
    "algo=dqn",
    "env=cartpole",
    "distributed=apex",
    "distributed.num_actors=2",
    "distributed.actor_pull_period_env_steps=32",
    "distributed.publish_period_updates=8",
    "distributed.updates_per_learner_step=16",
    "network.hidden_sizes=[32]",
    "algo.learning_starts_env_steps=256",
    "algo.batch_size=32",
    "trainer.total_env_steps=1500",
    "trainer.log_period_env_steps=256",
    "trainer.checkpoint_period_env_steps=0",
    "trainer.final_eval_episodes=2",
]


@pytest.fixture(scope="module", autouse=True)
def ray_session() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def column(run: Path, name: str) -> list[float]:
    return [float(r[name]) for r in rows(run) if r.get(name)]


def test_actor_exploration_follows_the_paper() -> None:
    assert actor_epsilon(0, 8) == pytest.approx(0.4)
    assert actor_epsilon(7, 8) == pytest.approx(0.4**8)
    assert actor_epsilon(3, 8) == pytest.approx(0.4 ** (1 + 7 * 3 / 7))
    assert actor_epsilon(0, 1) == pytest.approx(0.4)
    assert actor_noise_scale(0, 3) == pytest.approx(1.0) and actor_noise_scale(2, 3) == pytest.approx(0.3)


def test_apex_dqn_cartpole_end_to_end(make_cfg: Any, tmp_path: Path) -> None:
    out = train(make_cfg(*APEX_DQN))
    run = Path(out["run_dir"])
    summary = json.loads((run / "summary.json").read_text())
    assert 1500 <= out["env_steps"] < 1500 + 2 * 32
    # learner_pace=schedule: the algorithm's updates per env step after learning starts (tuned
    # dqn_cartpole: 128 gradient steps per 256 env steps)
    assert summary["learner_updates"] == pytest.approx((out["env_steps"] - 256) * 0.5, abs=17)
    assert summary["distributed"] == "apex" and summary["num_actors"] == 2
    assert (run / "checkpoints" / "last.pt").exists()
    header = rows(run)[0].keys()
    for name in (
        "perf/learner_updates_per_s",
        "perf/env_steps_per_s",
        "perf/actor_env_steps_per_s/0",
        "perf/actor_env_steps_per_s/1",
        "replay/size",
        "replay/sampled_per_inserted",
        "dist/weight_staleness",
        "dist/actor_restarts",
        "train/episode_return",
    ):
        assert name in header, name
    assert max(column(run, "replay/size")) >= 1000
    assert all(s >= 0 for s in column(run, "dist/weight_staleness"))
    assert max(column(run, "perf/actor_env_steps_per_s/1")) > 0


def test_stops_at_total_learner_updates(make_cfg: Any) -> None:
    out = train(
        make_cfg(*APEX_DQN, "trainer.total_env_steps=100000", "trainer.total_learner_updates=48",
                 "distributed.learner_pace=free")
    )
    assert out["learner_updates"] == 48
    assert out["env_steps"] < 100000


class _KillActor(L.Callback):
    """Kills actor 0 (Ray restarts it) after the first learner step."""

    def __init__(self) -> None:
        self.killed = False

    def on_train_batch_end(self, trainer: L.Trainer, module: Any, outputs: Any, batch: Any, idx: int) -> None:
        loop = trainer.train_dataloader
        if not self.killed:
            ray.kill(loop.roles.actors[0], no_restart=False)
            self.killed = True


def test_killed_actor_is_restarted_and_the_run_reaches_its_target(make_cfg: Any) -> None:
    kill = _KillActor()
    out = train(make_cfg(*APEX_DQN, "trainer.total_env_steps=2500"), callbacks=[kill])
    assert kill.killed
    assert out["actor_restarts"] >= 1
    assert out["env_steps"] >= 2500
    assert max(column(Path(out["run_dir"]), "dist/actor_restarts")) >= 1


def test_apex_sac_pendulum(make_cfg: Any) -> None:
    out = train(
        make_cfg(
            "algo=sac",
            "env=pendulum",
            "distributed=apex",
            "distributed.num_actors=2",
            "distributed.actor_pull_period_env_steps=32",
            "algo.hidden_sizes=[32]",
            "algo.learning_starts_env_steps=256",
            "algo.batch_size=32",
            "trainer.total_env_steps=1000",
            "trainer.checkpoint_period_env_steps=0",
        )
    )
    assert out["env_steps"] >= 1000 and out["learner_updates"] > 0
    assert np.isfinite(out["eval/return_mean"])


@pytest.mark.parametrize("algo", ["dqn", pytest.param("sac", marks=pytest.mark.slow)])
def test_seed_batches_inference_across_actors(make_cfg: Any, algo: str) -> None:
    env = ["env=cartpole", "network.hidden_sizes=[32]"] if algo == "dqn" else ["env=pendulum", "algo.hidden_sizes=[32]"]
    out = train(
        make_cfg(
            f"algo={algo}",
            *env,
            "distributed=seed",
            "distributed.num_actors=2",
            "distributed.actor_pull_period_env_steps=32",
            "algo.learning_starts_env_steps=256",
            "algo.batch_size=32",
            "trainer.total_env_steps=1000",
            "trainer.log_period_env_steps=256",
            "trainer.checkpoint_period_env_steps=0",
        )
    )
    run = Path(out["run_dir"])
    assert out["env_steps"] >= 1000 and out["learner_updates"] > 0
    fill = column(run, "inference/batch_fill")
    assert fill and all(0 < f <= 1 for f in fill)
    assert column(run, "inference/latency_ms")


def test_shard_samples_by_priority_and_updates_them() -> None:
    """Two actor slots; new transitions get the priorities sent with them; updates route back."""
    from types import SimpleNamespace

    import gymnasium as gym

    from d2rl.buffers.make import make_replay
    from d2rl.envs import EnvFacts

    cfg = SimpleNamespace(kind="prioritized", capacity=64, dedup_frames=True, alpha=1.0, priority_eps=1e-6,
                          importance_weights=True, beta_initial=0.4, beta_final=1.0)
    obs_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def make(capacity: int) -> Any:
        return make_replay(cfg, obs_space, gym.spaces.Discrete(2), 1, 1, 0.9, EnvFacts(), 0)

    shard = ReplayShard(make, 64, 0)
    T = 8
    chunk = {
        "obs": np.zeros((T, 1, 2), np.float32),
        "action": np.zeros((T, 1), np.int64),
        "reward": np.arange(T, dtype=np.float32).reshape(T, 1),
        "next_obs": np.zeros((T, 1, 2), np.float32),
        "terminated": np.zeros((T, 1), bool),
        "truncated": np.zeros((T, 1), bool),
    }
    prios = np.full((T, 1), 1e-6)
    prios[3] = 1.0  # one transition holds all the mass
    shard.add(0, chunk, prios, True)
    shard.add(1, chunk, np.full((T, 1), 1e-6), True)
    batch = shard.sample(16, 1.0)
    assert batch is not None and (batch["reward"] == 3.0).mean() > 0.9
    shard.update_priorities(batch["indices"][:1], np.array([0.0]))  # that transition drops to ~0
    again = shard.sample(16, 1.0)
    assert again is not None and (again["reward"] == 3.0).mean() < 0.5
    assert shard.stats()["inserted"] == 2 * T


def _prioritized_make() -> Any:
    """``make_buffer(capacity)`` for a shard, from d2rl's own functions (a worker imports them)."""
    import functools

    import gymnasium as gym

    from d2rl.distributed.roles import _make_buffer
    from d2rl.envs import EnvFacts

    cfg = {"kind": "prioritized", "capacity": 0, "dedup_frames": False, "alpha": 0.6, "priority_eps": 1e-6,
           "importance_weights": True, "beta_initial": 0.4, "beta_final": 1.0}
    box = gym.spaces.Box(-1, 1, (3,), np.float32)
    return functools.partial(_make_buffer, cfg, box, gym.spaces.Discrete(2), 2, 3, 0.9, EnvFacts(), 0)


def test_shard_state_travels_through_ray_without_copies_and_loads_back(tmp_path: Any) -> None:
    """A checkpoint pulls each shard's replay through Ray: numpy arrays the shard does not copy
    (Ray serializes them into its object store), tensors in the driver that share the store's
    read-only pages, ``torch.save``/``torch.load(weights_only=True)``, and a new shard that samples
    exactly as the first one does."""
    import torch

    from d2rl.distributed.transfer import as_tensors

    remote = ray.remote(ReplayShard)
    make = _prioritized_make()
    shard = remote.remote(make, 100, 5)
    rng = np.random.default_rng(0)
    for rank in (0, 1):
        chunk = {
            "obs": rng.random((30, 2, 3), dtype=np.float32),
            "next_obs": rng.random((30, 2, 3), dtype=np.float32),
            "action": rng.integers(0, 2, (30, 2)),
            "reward": rng.random((30, 2), dtype=np.float32),
            "terminated": rng.random((30, 2)) < 0.1,
            "truncated": np.zeros((30, 2), bool),
        }
        ray.get(shard.add.remote(rank, chunk, rng.random((30, 2)), True))
    raw = ray.get(shard.state_dict.remote())
    arrays = [v for part in raw.values() for v in part["buffer"].values()]
    assert arrays and all(isinstance(v, np.ndarray) for v in arrays)
    state = as_tensors(raw)
    assert all(isinstance(v, torch.Tensor) for part in state.values() for v in part["buffer"].values())
    torch.save(state, tmp_path / "replay.pt")
    loaded = torch.load(tmp_path / "replay.pt", weights_only=True)
    again = remote.remote(make, 100, 5, loaded)
    assert ray.get(again.size.remote()) == ray.get(shard.size.remote()) == 2 * 30 * 2
    a, b = ray.get([shard.sample.remote(32, 0.5), again.sample.remote(32, 0.5)])
    for key in a:
        assert np.array_equal(np.asarray(a[key]), np.asarray(b[key])), key
    # the first shard's own arrays are untouched by the driver's tensors (and still writable there)
    ray.get(shard.update_priorities.remote(a["indices"][:4], np.full(4, 9.0)))
    assert torch.equal(state[0]["buffer"]["priorities"], loaded[0]["buffer"]["priorities"])


# rainbow (noisy, distributional, dueling) in every run; the other presets share its learner: slow
@pytest.mark.parametrize(
    "preset", ["rainbow", *(pytest.param(p, marks=pytest.mark.slow) for p in ("iqn", "fqf", "mdqn", "miqn"))]
)
def test_apex_runs_every_value_preset(make_cfg: Any, preset: str) -> None:
    """The DQN family's switches through the same Ape-X loop (actor-side priorities from each
    distribution's own TD error)."""
    out = train(
        make_cfg(
            f"algo={preset}",
            "env=cartpole",
            "~tuned",
            "distributed=apex",
            "distributed.num_actors=2",
            "distributed.actor_pull_period_env_steps=32",
            "distributed.updates_per_learner_step=8",
            "network.hidden_sizes=[32]",
            "algo.learning_starts_env_steps=128",
            "algo.batch_size=16",
            "algo.update_period_env_steps=8",
            "trainer.total_env_steps=512",
            "trainer.checkpoint_period_env_steps=0",
        )
    )
    assert out["env_steps"] >= 512 and out["learner_updates"] >= (512 - 128) // 8 - 8
    assert np.isfinite(out["eval/return_mean"])


@pytest.mark.parametrize("backend", ["apex", pytest.param("seed", marks=pytest.mark.slow)])
def test_r2d2_sequences_through_the_shards(make_cfg: Any, backend: str) -> None:
    """R2D2 on the memory task: actors build burnt-in sequences (with the recurrent state they
    acted from; SEED: the inference actor's) and the learner trains on them."""
    out = train(
        make_cfg(
            "algo=r2d2",
            "env=memory_cue",
            f"distributed={backend}",
            "distributed.num_actors=2",
            "distributed.actor_pull_period_env_steps=64",
            "algo.learning_starts_env_steps=300",
            "algo.batch_size=8",
            "trainer.total_env_steps=1200",
            "trainer.log_period_env_steps=256",
            "trainer.checkpoint_period_env_steps=0",
        )
    )
    run = Path(out["run_dir"])
    assert out["env_steps"] >= 1200
    assert out["learner_updates"] >= (1200 - 300) // 8 - 8  # r2d2: 1 update per 8 env steps
    assert max(column(run, "replay/size")) >= 50  # sequences of 10-step episodes
    assert column(run, "train/replay_sequences")


def test_apex_has_the_local_runs_nan_guard_and_checkpoint_retention(make_cfg: Any) -> None:
    """Ape-X runs get the same callbacks as local ones (``train.run_callbacks``): a NaN stops the run
    naming the metric and keeps the last good checkpoint, and retention kept ``keep_checkpoints``
    step files of the four written before it."""
    from d2rl import checkpoint
    from d2rl.nan_guard import NonFiniteError

    cfg = make_cfg(
        *APEX_DQN[:-3],
        "trainer.checkpoint_period_env_steps=256",
        "trainer.keep_checkpoints=2",
        "trainer.final_eval_episodes=1",
        "trainer.total_env_steps=3000",
    )
    with pytest.raises(NonFiniteError, match=r"is nan at env step \d+ \(learner step 30\)"):
        train(cfg, callbacks=[PoisonParameters(at=29)])
    ckpt = Path(cfg.output_dir) / "checkpoints"
    steps = checkpoint.step_files(ckpt)
    assert len(steps) == 2 and os.path.samefile(ckpt / "last.pt", steps[-1])
    last = checkpoint.load(ckpt)
    assert last["loop"]["env_steps"] >= 1024  # four periods passed before learner step 30
    assert all(bool(np.isfinite(v.numpy()).all()) for v in last["learner"].values() if v.is_floating_point())
