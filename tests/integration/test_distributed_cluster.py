"""A cluster d2rl did not start: `ray.cluster_utils.Cluster` runs a head and a second node (with a
custom resource) on this machine. An Ape-X run joins it through `distributed.address` and places
its actors on the second node; the `hydra/launcher=ray_cluster` sweep preset runs its jobs there."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Any, Any]]:
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    node2 = c.add_node(num_cpus=2, resources={"node2": 4})
    c.wait_for_nodes()
    yield c, node2
    c.shutdown()


def d2rl(*args: str, cwd: Path, address: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MPLBACKEND": "Agg", "RAY_ADDRESS": address}
    return subprocess.run([str(BIN / "d2rl"), *args], cwd=cwd, capture_output=True, text=True, timeout=500, env=env)


def test_apex_joins_the_cluster_and_places_actors_by_resource(cluster: Any, tmp_path: Path) -> None:
    c, node2 = cluster
    run = tmp_path / "run"
    r = d2rl(
        "algo=dqn",
        "env=cartpole",
        "distributed=apex",
        f"distributed.address={c.address}",
        "+distributed.actor_resources.node2=1",
        "distributed.actor_pull_period_env_steps=32",
        "network.hidden_sizes=[32]",
        "algo.learning_starts_env_steps=256",
        "algo.batch_size=32",
        "trainer.total_env_steps=800",
        "trainer.progress_bar=false",
        "trainer.eval_period_env_steps=0",
        "trainer.checkpoint_period_env_steps=0",
        "trainer.final_eval_episodes=2",
        "logger.tensorboard=false",
        "logger.learning_curve=false",
        f"output_dir={run}",
        cwd=tmp_path,
        address="",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] >= 800 and summary["learner_updates"] > 0
    assert summary["actor_nodes"] == {"0": node2.node_id, "1": node2.node_id}
    assert "the cluster keeps running (not started by d2rl)" in r.stdout + r.stderr


def test_ray_cluster_sweep_preset_runs_on_the_cluster(cluster: Any, tmp_path: Path) -> None:
    c, _ = cluster
    sweep = tmp_path / "sweep"
    r = d2rl(
        "-m",
        "hydra/launcher=ray_cluster",
        "seed=0,1",
        "~tuned",
        "algo.num_steps=64",
        "trainer.total_env_steps=256",
        "trainer.progress_bar=false",
        "trainer.eval_period_env_steps=0",
        "trainer.checkpoint_period_env_steps=0",
        "trainer.final_eval_episodes=2",
        "logger.tensorboard=false",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        address=c.address,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    with (sweep / "sweep_summary.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["status"] for row in rows] == ["ok", "ok"]
    for row in rows:
        assert json.loads((sweep / row["job"] / "summary.json").read_text())["env_steps"] == 256


def test_without_an_address_a_run_starts_its_own_instance_beside_the_cluster(cluster: Any, tmp_path: Path) -> None:
    """The cluster left its address in Ray's temp folder (as `ray start` does). A run with no
    address starts a local instance of its own, as documented, instead of joining that cluster
    (where ray.init(num_cpus=...) used to fail with a traceback)."""
    c, node2 = cluster
    run = tmp_path / "run"
    r = d2rl(
        "algo=dqn",
        "env=cartpole",
        "distributed=apex",
        "network.hidden_sizes=[16]",
        "algo.learning_starts_env_steps=128",
        "algo.batch_size=16",
        "trainer.total_env_steps=300",
        "trainer.progress_bar=false",
        "trainer.eval_period_env_steps=0",
        "trainer.checkpoint_period_env_steps=0",
        "trainer.final_eval_episodes=1",
        "logger.tensorboard=false",
        "logger.learning_curve=false",
        f"output_dir={run}",
        cwd=tmp_path,
        address="",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "stopped the instance d2rl started" in r.stdout + r.stderr
    nodes = set(json.loads((run / "summary.json").read_text())["actor_nodes"].values())
    assert nodes and not nodes & {node2.node_id, c.head_node.node_id}
