"""The Loop: on-policy freshness, progress within a learner step, stopping on signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from d2rl import checkpoint
from d2rl.algorithms.on_policy import ActorCriticPolicy
from d2rl.train import train


def _params(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()]).clone()


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_on_policy_update_uses_the_rollout_of_the_latest_parameters(make_cfg, monkeypatch, algo) -> None:  # type: ignore[no-untyped-def]
    """Every action of rollout k is taken with exactly the parameters update k starts from, i.e.
    the ones update k-1 left (Lightning fetches the next rollout only when asked, no prefetch)."""
    acted: list[torch.Tensor] = []
    act = ActorCriticPolicy.act

    def spy(self, obs, state=None, explore=True, env_step=0):  # type: ignore[no-untyped-def]
        if explore:
            acted.append(_params(self))
        return act(self, obs, state, explore, env_step)

    monkeypatch.setattr(ActorCriticPolicy, "act", spy)
    starts: list[tuple[int, torch.Tensor]] = []

    class AtUpdate(L.Callback):
        def on_train_batch_start(self, trainer, learner, batch, batch_idx):  # type: ignore[no-untyped-def]
            starts.append((len(acted), _params(learner.policy)))

    train(
        make_cfg(
            f"algo={algo}", "~tuned", "env.num_envs=2", "algo.num_steps=8", "trainer.total_env_steps=64"
        ),
        callbacks=[AtUpdate()],
    )
    assert len(starts) == 4 and len(acted) == 32
    for k, (n_acted, at_start) in enumerate(starts):
        assert n_acted == 8 * (k + 1)  # rollout k was collected right before update k, not earlier
        for p in acted[8 * k : n_acted]:
            assert torch.equal(p, at_start)
        if k:
            assert not torch.equal(at_start, starts[k - 1][1])  # the update changed them


def test_sigterm_stops_a_long_update_within_seconds(tmp_path: Path) -> None:
    """A learner step of minutes (many PPO epochs) still stops within seconds of SIGTERM, writes a
    checkpoint and exits 143; the progress bar moved before the first learner step ended."""
    run = tmp_path / "run"
    cmd = [
        sys.executable, "-c", "from d2rl.cli import main; main()",
        "~tuned", "trainer.total_env_steps=8192", "env.num_envs=4", "algo.num_steps=1024",
        "algo.num_minibatches=32", "algo.update_epochs=2000", "trainer.eval_period_env_steps=0",
        f"output_dir={run}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    assert proc.stderr is not None
    deadline = time.time() + 120
    seen = ""
    while "4.10k/8.19k" not in seen and time.time() < deadline:  # the first rollout is collected
        seen += proc.stderr.read(1)
    assert "4.10k/8.19k" in seen, seen[-2000:]
    time.sleep(2.0)  # inside the (minutes-long) update now
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert time.time() - t0 < 15, "did not stop within seconds"
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert checkpoint.load(run)["loop"]["env_steps"] == 4096
