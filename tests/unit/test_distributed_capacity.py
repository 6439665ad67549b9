"""Ray capacity: a run whose actors Ray cannot all place is refused in one line, not left waiting.

(Found by benchmarks/apex_throughput.py: 4 actors x 0.5 CPU + a 0.25-CPU shard on a 2-CPU instance
left the fourth actor unplaced, and the run waited forever 32 env steps short of its target.)
"""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from d2rl.config import DistributedConfig
from d2rl.distributed.session import _check_capacity, cpu_demand
from d2rl.errors import D2RLError


def dcfg(**kw: object) -> object:
    return OmegaConf.merge(OmegaConf.structured(DistributedConfig), kw)


@pytest.mark.parametrize(
    "kw, demand",
    [
        ({"backend": "apex", "num_actors": 4}, 4 * 0.5 + 0.25),
        ({"backend": "apex", "num_actors": 2, "num_replay_shards": 2}, 2 * 0.5 + 2 * 0.25),
        ({"backend": "seed", "num_actors": 2}, 2 * 0.5 + 0.25 + 0.5),
        ({"backend": "apex", "num_actors": 8, "actor_cpus": 0.1}, 8 * 0.1 + 0.25),
    ],
)
def test_cpu_demand(kw: dict, demand: float) -> None:
    assert cpu_demand(dcfg(**kw)) == pytest.approx(demand)


def test_a_run_larger_than_the_cluster_is_refused_in_one_line() -> None:
    with pytest.raises(D2RLError) as e:
        _check_capacity(dcfg(backend="apex", num_actors=4), 2.0)
    msg = str(e.value)
    assert "\n" not in msg and "2.25 CPUs" in msg and "has 2" in msg and "actor_cpus" in msg
    _check_capacity(dcfg(backend="apex", num_actors=3), 2.0)  # 1.75 fits
