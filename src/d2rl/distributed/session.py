"""Ray for a run: join ``distributed.address`` (or ``RAY_ADDRESS``) or start a local instance."""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from d2rl.errors import D2RLError

log = logging.getLogger(__name__)


def _probe(address: str, timeout_s: float) -> None:
    """Fail fast (one line) when no Ray GCS answers at ``host:port`` within ``timeout_s``.

    Two steps: a TCP connection, then one gRPC call the GCS answers (``GetClusterId``). The second
    matters where something else accepts the connection (a firewall or proxy that answers HTTP/2):
    there Ray's own client retries for about 30 s before it gives up."""
    if address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    fix = "start it with `ray start --head` or drop distributed.address to run on a local Ray instance"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as e:
        raise D2RLError(f"cannot reach the Ray cluster at distributed.address={address} ({e}); {fix}") from None
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return  # a TLS cluster: the plain-text probe below cannot speak to it; Ray's client will
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    channel = grpc.insecure_channel(address)
    try:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=timeout_s)
    except grpc.RpcError as e:
        code = e.code() if hasattr(e, "code") else None
        # a GCS that refuses us (token authentication: UNAUTHENTICATED) is still a GCS: Ray's
        # client, which has the token, joins it. Only "nothing speaks Ray's gRPC here" fails.
        if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNIMPLEMENTED):
            return
        detail = (e.details() or "").splitlines()[0][:120] if hasattr(e, "details") else ""
        raise D2RLError(
            f"cannot join the Ray cluster at distributed.address={address}: the port is open but no "
            f"Ray GCS answered ({code.name}{': ' + detail if detail else ''}); {fix}"
        ) from None
    finally:
        channel.close()


def cpu_demand(dcfg: Any) -> float:
    """Logical CPUs the run's Ray actors ask for: actors, replay shards and (SEED) the inference
    actor. The learner is the driver process and asks for none."""
    demand = int(dcfg.num_actors) * float(dcfg.actor_cpus)
    demand += max(1, int(dcfg.num_replay_shards)) * float(dcfg.replay_cpus)
    if str(dcfg.backend) == "seed":
        demand += float(dcfg.inference_cpus)
    return demand


def _check_capacity(dcfg: Any, cluster_cpus: float) -> None:
    """An actor Ray cannot place would wait forever and stall the run at its last chunk: refuse."""
    demand = cpu_demand(dcfg)
    if demand > cluster_cpus + 1e-9:
        raise D2RLError(
            f"the run asks Ray for {demand:g} CPUs (distributed.num_actors={dcfg.num_actors} x "
            f"actor_cpus={dcfg.actor_cpus}, {max(1, int(dcfg.num_replay_shards))} replay shard(s) x "
            f"replay_cpus={dcfg.replay_cpus}"
            + (f", inference_cpus={dcfg.inference_cpus}" if str(dcfg.backend) == "seed" else "")
            + f") but the cluster has {cluster_cpus:g}; lower distributed.actor_cpus or num_actors, "
            "or add nodes"
        )


@contextmanager
def ray_session(dcfg: Any) -> Iterator[bool]:
    """Yields whether d2rl started the instance (then it is shut down on exit, Ctrl-C included).

    An instance already initialised in this process (tests, a notebook) is used as it is.
    """
    import ray

    if ray.is_initialized():
        _check_capacity(dcfg, float(ray.cluster_resources().get("CPU", 0.0)))
        yield False
        return
    address = dcfg.address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address:
        _probe(str(address), float(dcfg.connect_timeout_s))
        kwargs["address"] = str(address)
    else:
        # "local": a new instance even where `ray start` (or a test's Cluster) left its address in
        # Ray's temp folder; ray.init() alone would join that cluster (and refuse num_cpus with a
        # ValueError) or wait on a stale address
        kwargs["address"] = "local"
        # Ray's CPUs are scheduling tokens. A local instance gets at least what the run asks for,
        # so distributed.num_actors=4 on a 2-core laptop oversubscribes the cores (the user's
        # choice) instead of leaving an actor unplaced and the run waiting for it forever.
        kwargs["num_cpus"] = (
            int(dcfg.num_cpus)
            if dcfg.num_cpus is not None
            else max(os.cpu_count() or 1, math.ceil(cpu_demand(dcfg)))
        )
    try:
        ray.init(**kwargs)
    except (ConnectionError, TimeoutError, RuntimeError) as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise D2RLError(f"cannot start or join {where}: {str(e).splitlines()[0][:300]}") from None
    log.info("Ray %s: %s", "joined" if address else "started", ray.cluster_resources())
    try:
        _check_capacity(dcfg, float(ray.cluster_resources().get("CPU", 0.0)))
        yield not address
    finally:
        ray.shutdown()  # stops an instance d2rl started; only disconnects from a joined cluster
        if address:
            log.info("Ray: disconnected from %s; the cluster keeps running (not started by d2rl)", address)
        else:
            log.info("Ray: stopped the instance d2rl started")
