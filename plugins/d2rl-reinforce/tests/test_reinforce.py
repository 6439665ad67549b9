"""The example plugin's own tests: run them with the plugin installed (`pip install -e .`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from d2rl_reinforce.corridor import Corridor
from d2rl_reinforce.reinforce import reinforce_loss
from d2rl_reinforce.resmlp import ResMLP
from d2rl_reinforce.specs import REINFORCE as SPEC
from hydra.errors import ConfigCompositionException

from d2rl import registry
from d2rl.buffers.rollout import compute_gae
from d2rl.train import train


def test_entry_points_register_all_three() -> None:
    assert registry.get_algorithm("reinforce") is SPEC
    assert registry.algorithms().entries["reinforce"].provider == "d2rl-reinforce"
    assert registry.networks().entries["resmlp"].provider == "d2rl-reinforce"
    assert registry.env_suites().entries["toy"].provider == "d2rl-reinforce"
    assert "pkg://d2rl_reinforce.conf" in registry.config_search_paths()


def test_loss_by_hand() -> None:
    logprob = torch.tensor([-0.5, -1.0], requires_grad=True)
    adv = torch.tensor([2.0, -1.0])
    value = torch.tensor([1.0, 0.0])
    ret = torch.tensor([3.0, 1.0])
    entropy = torch.tensor([0.6, 0.4])
    loss, m = reinforce_loss(logprob, adv, value, ret, entropy, vf_coef=0.5, ent_coef=0.1)
    pg = -((-0.5 * 2.0) + (-1.0 * -1.0)) / 2  # = 0.0
    v = 0.5 * ((1 - 3) ** 2 + (0 - 1) ** 2) / 2  # = 1.25
    assert m["loss/policy"].item() == pytest.approx(pg)
    assert m["loss/value"].item() == pytest.approx(v)
    assert loss.item() == pytest.approx(pg + 0.5 * v - 0.1 * 0.5)
    loss.backward()
    # d loss / d logprob_i = -adv_i / B
    assert logprob.grad is not None
    assert torch.allclose(logprob.grad, torch.tensor([-1.0, 0.5]))


def test_lambda_one_gives_monte_carlo_returns() -> None:
    # one env, an episode of 3 steps ending at t=2, then a step cut by the chunk end (bootstrapped)
    rewards = np.array([[1.0], [2.0], [3.0], [4.0]])
    values = np.array([[0.5], [0.5], [0.5], [0.5]])
    dones = np.array([[False], [False], [True], [False]])
    last = np.array([10.0])
    g = 0.9
    adv, ret = compute_gae(rewards, values, dones, last, g, 1.0)
    expected = [1 + g * 2 + g * g * 3, 2 + g * 3, 3.0, 4 + g * 10]
    assert ret[:, 0] == pytest.approx(expected)
    assert adv[:, 0] == pytest.approx(np.array(expected) - 0.5)


def test_resmlp_shapes() -> None:
    net = ResMLP(in_dim=6, width=16, num_blocks=2)
    assert net(torch.zeros(5, 2, 3)).shape == (5, 16) and net.out_dim == 16


def test_corridor_dynamics() -> None:
    env = Corridor(length=4, step_cost=0.1)
    obs, _ = env.reset(seed=0)
    assert obs.argmax() == 0
    total, done = 0.0, False
    while not done:
        obs, r, done, _, _ = env.step(1)
        total += r
    assert total == pytest.approx(1 - 2 * 0.1) and obs.argmax() == 3
    env.reset()
    obs, r, done, _, _ = env.step(0)  # walking into the wall stays in cell 0
    assert obs.argmax() == 0 and r == pytest.approx(-0.1) and not done


def test_yaml_preset_composes(make_cfg) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg("algo=reinforce_entropy", "env=cartpole")
    # tuned/reinforce_cartpole.yaml applies to the algorithm's presets too (it has none of its own)
    assert cfg.algo.name == "reinforce" and cfg.algo.ent_coef == 0.01 and cfg.algo.lr == 2e-3
    assert make_cfg("algo=reinforce_entropy", "env=cartpole", "~tuned").algo.lr == 1e-3
    tuned = make_cfg("algo=reinforce", "env=cartpole", "network=resmlp")
    assert tuned.algo.lr == 2e-3 and tuned.env.num_envs == 8  # tuned/reinforce_cartpole.yaml
    assert tuned.network.width == 64 and tuned.network.num_blocks == 2
    with pytest.raises(ConfigCompositionException, match="lrr"):  # the dataclass validates
        make_cfg("algo=reinforce", "algo.lrr=1")


def test_learns_the_corridor(make_cfg) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg("algo=reinforce", "env=toy_corridor", "network=mlp", "seed=1")
    assert cfg.env.suite == "toy" and cfg.algo.num_steps == 32  # the plugin's env YAML + tuned file
    result = train(cfg)
    assert result["eval/return_mean"] == pytest.approx(0.94)  # optimal: 1 - 6 * 0.01


@pytest.mark.slow
def test_learns_cartpole(make_cfg) -> None:  # type: ignore[no-untyped-def]
    """The FINAL policy after 100k env steps scores >= 400 over 10 deterministic episodes.

    Robust across seeds rather than machine-independent: the run is seeded and single-threaded
    (``trainer.torch_threads=1``), but floating-point results differ between CPUs and a changed
    trajectory behaves like another seed. Measured with the tuned settings (final evaluation at
    100k, seeds 1-10): 500, 484, 500, 499, 500, 461, 500, 500, 476, 481 — every seed above 450.
    The budget is 100k because REINFORCE with a constant learning rate drifts after it learns: at
    150k the finals of seeds 1-8 were 217, 483, 476, 477, 500, 500, 489, 498 (seed 1: 217 here,
    489.5 on the machine that first wrote this test, the CI failure of issue 9).
    """
    cfg = make_cfg(
        "algo=reinforce", "env=cartpole", "seed=1", "trainer.torch_threads=1",
        "trainer.total_env_steps=100000", "trainer.eval_period_env_steps=0", "trainer.final_eval_episodes=10",
    )  # fmt: skip
    assert cfg.algo.lr == pytest.approx(2e-3)  # the plugin's tuned/reinforce_cartpole.yaml applied
    result = train(cfg)
    assert result["eval/return_mean"] >= 400.0


def test_box_actions_train_and_stay_in_bounds(make_cfg) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg("algo=reinforce", "env=pendulum", "algo.num_steps=64", "trainer.total_env_steps=512",
                   "trainer.final_eval_episodes=1")  # fmt: skip
    result = train(cfg)
    assert result["env_steps"] == 512 and -2000 < result["eval/return_mean"] <= 0
