"""Every pixel encoder of the zoo, and each conv option, runs a PPO iteration on Procgen through
`train(cfg)`; the randomized input conv is redrawn between iterations and off in evaluation."""

from __future__ import annotations

import pytest
import torch

from d2rl import checkpoint, registry
from d2rl.modules.regularization import random_convs
from d2rl.train import load_policy, train

pytest.importorskip("procgen")

PPO_TINY = [
    "env=procgen_coinrun",
    "env.num_envs=2",
    "algo.num_steps=16",
    "algo.num_minibatches=2",
    "algo.update_epochs=1",
    "trainer.total_env_steps=64",
    "trainer.checkpoint_period_env_steps=0",
    "trainer.final_eval_episodes=1",
    "network.features=16",
]
TINY = {  # small sizes per family; the network's own options are exercised elsewhere
    "nature_cnn": [],
    "impala_resnet": ["network.channels=[4,4,4]"],
    "resnet": ["network.channels=[4,8,8]"],
    "mobilenet": ["network.width=0.25"],
    "transformer": ["network.dim=16", "network.heads=2", "network.layers=1", "network.conv_channels=[8,8]"],
}


def pixel_networks() -> list[str]:
    return sorted(n for n, e in registry.networks().entries.items() if "pixels" in e.spec.accepts)


@pytest.mark.parametrize("network", pixel_networks())
def test_each_pixel_network_trains_a_ppo_iteration(make_cfg, network) -> None:  # type: ignore[no-untyped-def]
    out = train(make_cfg(*PPO_TINY, f"network={network}", *TINY.get(network, [])))
    assert out["env_steps"] == 64


@pytest.mark.parametrize(
    "option",
    ["network.block=se", "network.block=cbam", "network.self_attention=true", "network.batch_norm=true",
     "network.spectral_norm=true"],
)  # fmt: skip
def test_each_conv_option_trains_a_ppo_iteration(make_cfg, option) -> None:  # type: ignore[no-untyped-def]
    out = train(make_cfg(*PPO_TINY, "network=impala_resnet", *TINY["impala_resnet"], option))
    assert out["env_steps"] == 64


def test_random_conv_is_redrawn_each_iteration_and_off_in_evaluation(make_cfg, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(*PPO_TINY, "network=impala_resnet", *TINY["impala_resnet"], "network.random_conv=true",
                   "algo.random_conv_clean_prob=0.0", "trainer.checkpoint_period_env_steps=32")  # fmt: skip
    train(cfg)
    first = checkpoint.load(tmp_path / "run" / "checkpoints" / "step_000000000032.pt")
    last = checkpoint.load(tmp_path / "run")
    key = next(k for k in first["policy"] if k.endswith("randomize.weight"))
    assert not torch.equal(first["policy"][key], last["policy"][key])  # redrawn after the update
    rows = (tmp_path / "run" / "metrics.csv").read_text()
    assert "loss/feature_matching" in rows
    policy, _ = load_policy(last)
    obs = torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8)
    conv = random_convs(policy)[0]
    assert not policy.training and torch.equal(conv(obs.float() / 255), obs.float() / 255)
