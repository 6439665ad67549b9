"""DQN end to end: replay (with priorities) survives a checkpoint/resume; action-space errors;
one update on a hand-made batch (FQF, IQN, epsilon logging) and the Rainbow network shape; the
policy's epsilon schedule, the learner's round (target sync by env steps, priorities, metrics)."""

from __future__ import annotations

import copy
import csv
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

from d2rl import checkpoint
from d2rl.algorithms.dqn import losses as dqn_losses
from d2rl.algorithms.dqn.learner import DQNLearner, EpsilonSchedule
from d2rl.buffers.batches import ReplayBatches
from d2rl.core import Built
from d2rl.envs import EnvFacts
from d2rl.errors import D2RLError
from d2rl.modules.q_heads import NoisyLinear
from d2rl.train import build_algorithm, train

SMALL = [
    "algo=rainbow",
    "replay=prioritized",
    "env.num_envs=2",
    "network.hidden_sizes=[16]",
    "algo.iteration_env_steps=128",
    "algo.learning_starts_env_steps=128",
    "algo.batch_size=16",
    "algo.update_period_env_steps=8",
    "replay.capacity=2000",
    "trainer.total_env_steps=768",
    "trainer.checkpoint_period_env_steps=256",
]


class _StopAfter(L.Callback):
    def __init__(self, n: int) -> None:
        self.n = n

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        if batch_idx + 1 == self.n:
            raise RuntimeError("simulated crash")


class _CheckBuffer(L.Callback):
    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        self.state = state  # the checkpoint's storage
        self.checked = False

    def on_train_start(self, trainer, learner) -> None:  # type: ignore[no-untyped-def]
        now = trainer.train_dataloader.storage.state_dict()  # the Loop's replay
        for k in ("obs", "reward", "valid", "priorities"):
            assert torch.equal(now[k], self.state[k]), k
        assert float(learner.gradient_steps_done) > 0
        self.checked = True


@pytest.mark.slow  # ~35 s; test_resume_exact.py[dqn_prioritized] checks the same in every run
def test_resume_restores_replay_and_priorities(make_cfg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(make_cfg(*SMALL), callbacks=[_StopAfter(3)])  # checkpoint at 256, crash at 384
    run = tmp_path / "run"
    saved = checkpoint.load(run)
    assert saved["loop"]["env_steps"] == 256
    assert int(saved["storage"]["valid"].sum()) == 256
    check = _CheckBuffer(saved["storage"])
    out = train(
        make_cfg("trainer.progress_bar=false", f"resume={run}", output_dir=tmp_path / "x"), callbacks=[check]
    )
    assert check.checked and out["env_steps"] == 768
    final = checkpoint.load(run)
    assert int(final["storage"]["valid"].sum()) == 768


def test_replay_can_stay_out_of_checkpoints(make_cfg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    train(make_cfg(*SMALL, "replay.save_in_checkpoint=false", "trainer.total_env_steps=256"))
    saved = checkpoint.load(tmp_path / "run")
    assert saved["storage"] == {} and not any("replay" in k for k in saved["learner"])


def test_value_based_algorithms_refuse_box_actions(make_cfg) -> None:  # type: ignore[no-untyped-def]
    for algo in ("dqn", "rainbow", "iqn", "fqf", "mdqn", "miqn"):
        with pytest.raises(D2RLError, match="algorithm 'dqn' supports discrete actions.*box"):
            train(make_cfg(f"algo={algo}", "env=pendulum"))


def test_bad_switch_combinations_are_d2rl_errors(make_cfg) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(D2RLError, match="munchausen"):
        train(make_cfg("algo=rainbow", "algo.munchausen=true"))
    with pytest.raises(D2RLError, match="distributional"):
        train(make_cfg("algo=dqn", "algo.distributional=qr"))


# -- one update on a hand-made batch (issue 9: FQF clip and weights, IQN policy samples, ...) ----


def _built(make_cfg, *overrides: str, obs_shape: tuple[int, ...] = (3,), actions: int = 2) -> Built:  # type: ignore[no-untyped-def]
    """What `train` would build for these overrides, for a Box(obs_shape) x Discrete env."""
    pixels = len(obs_shape) == 3
    envs = SimpleNamespace(
        single_observation_space=gym.spaces.Box(0, 255, obs_shape, np.uint8 if pixels else np.float32),
        single_action_space=gym.spaces.Discrete(actions),
        num_envs=1,
        d2rl_facts=EnvFacts(pixels=pixels),
    )
    torch.manual_seed(0)
    built, _ = build_algorithm(make_cfg("env=gym", *overrides, "replay.capacity=64"), envs, 0)
    return built


def _agent(make_cfg, *overrides: str, **space: Any) -> DQNLearner:  # type: ignore[no-untyped-def]
    return _built(make_cfg, *overrides, **space).learner  # type: ignore[return-value]


def _batch(weights: list[float]) -> dict[str, torch.Tensor]:
    B = len(weights)
    g = torch.Generator().manual_seed(1)
    return {
        "obs": torch.randn(B, 3, generator=g),
        "action": torch.arange(B) % 2,
        "reward": torch.ones(B),
        "next_obs": torch.randn(B, 3, generator=g),
        "terminated": torch.zeros(B),
        "discount": torch.full((B,), 0.5),
        "weights": torch.tensor(weights),
    }


FQF = ["algo=fqf", "network.hidden_sizes=[16]", "algo.fraction_lr=1e-3"]


def test_fqf_grad_clip_leaves_out_the_fraction_network(make_cfg) -> None:  # type: ignore[no-untyped-def]
    """Stale fraction-network gradients (left by the previous step) must not shrink the main clip."""
    agent = _agent(make_cfg, *FQF, "algo.max_grad_norm=0.1")
    grads = []
    for stale in (0.0, 100.0):
        a = copy.deepcopy(agent)
        opts = a.configure_optimizers()
        for p in a.q.fractions.parameters():
            p.grad = torch.full_like(p, stale)
        a.update(_batch([1.0, 1.0, 1.0, 1.0]), opts)
        grads.append([p.grad.clone() for group in opts[0].param_groups for p in group["params"]])
    assert torch.cat([g.flatten() for g in grads[0]]).norm() == pytest.approx(0.1, rel=1e-4)  # clipped
    for clean, stale in zip(*grads, strict=True):
        torch.testing.assert_close(stale, clean)


def test_fqf_fraction_loss_is_weighted_by_importance_weights(make_cfg) -> None:  # type: ignore[no-untyped-def]
    """mean_B(w * L_frac): weights (2, 0) on two rows give the gradient of row 0 alone with weight 1."""
    agent = _agent(make_cfg, *FQF)
    grads = []
    for batch in (_batch([2.0, 0.0]), {k: v[:1] for k, v in _batch([1.0, 0.0]).items()}):
        a = copy.deepcopy(agent)
        opts = a.configure_optimizers()
        a.update(batch, opts)
        grads.append([p.grad.clone() for p in a.q.fractions.parameters()])
    assert grads[1][0].abs().sum() > 0
    for two_rows, one_row in zip(*grads, strict=True):
        torch.testing.assert_close(two_rows, one_row)


def test_iqn_greedy_next_action_uses_k_fresh_policy_samples(make_cfg, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Dabney et al. 2018, Algorithm 1: a* from K samples, the target distribution from N' others.

    Target quantiles ``Z_0(tau) = 10 (tau - 0.5)``, ``Z_1 = 0``. The N' = 5 target fractions are
    all 0.9 (mean Z_0 = 4: action 0 would win), the K = 7 policy fractions all 0.1 (mean Z_0 = -4:
    action 1 wins). Right target: ``r + 0.5 Z_1 = 1``; from the N' samples it would be ``1 + 0.5 * 4``.
    """
    agent = _agent(make_cfg, "algo=iqn", "network.hidden_sizes=[8]", "algo.num_quantiles=3",
                   "algo.num_target_quantiles=5", "algo.num_policy_quantiles=7")  # fmt: skip
    fractions = {5: 0.9, 7: 0.1}
    monkeypatch.setattr(torch, "rand", lambda *shape: torch.full(shape, fractions.get(shape[-1], 0.5)))

    def fake_quantiles(features: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
        return torch.stack([10 * (taus - 0.5), torch.zeros_like(taus)], dim=-1)  # [B, T, 2]

    monkeypatch.setattr(agent.q_target, "quantiles", fake_quantiles)
    targets = []
    loss = dqn_losses.quantile_huber_loss
    monkeypatch.setattr(
        dqn_losses,
        "quantile_huber_loss",
        lambda z, t, target, k: targets.append(target) or loss(z, t, target, k),
    )
    agent.loss(_batch([1.0, 1.0]))
    torch.testing.assert_close(targets[0], torch.ones(2, 5))


def test_noisy_nets_with_epsilon_log_the_epsilon_applied(make_cfg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    train(make_cfg("algo=rainbow", "env=gym", "env.id=d2rl-probe/ConstantReward-v0", "env.num_envs=2",
                   "network.hidden_sizes=[8]", "algo.epsilon_initial=0.3", "algo.epsilon_final=0.3",
                   "algo.learning_starts_env_steps=64", "algo.iteration_env_steps=64",
                   "algo.update_period_env_steps=16", "trainer.total_env_steps=256",
                   "trainer.log_period_env_steps=64", "trainer.checkpoint_period_env_steps=0",
                   "replay.capacity=256"))  # fmt: skip
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    logged = [
        float(r["train/epsilon"]) for r in rows if r.get("train/epsilon") and float(r["env_step"]) >= 64
    ]
    assert logged and logged == pytest.approx([0.3] * len(logged))


def test_rainbow_on_nature_cnn_has_a_noisy_512_layer_per_stream_on_the_conv_trunk(make_cfg) -> None:  # type: ignore[no-untyped-def]
    """Wang et al. 2016 / Hessel et al. 2018: conv trunk -> per stream noisy 512 -> noisy output."""
    pixels = {"obs_shape": (4, 84, 84), "actions": 6}
    q = _agent(make_cfg, "algo=rainbow", "network=nature_cnn", **pixels).q
    assert isinstance(q.encoder.fc, nn.Identity) and q.encoder.out_dim == 64 * 7 * 7
    assert not any(isinstance(m, nn.Linear) for m in q.encoder.modules())  # no shared fc below
    for stream, out in ((q.head.value, 51), (q.head.advantage, 6 * 51)):
        hidden, _, last = stream
        assert isinstance(hidden, NoisyLinear) and (hidden.in_dim, hidden.out_dim) == (3136, 512)
        assert isinstance(last, NoisyLinear) and (last.in_dim, last.out_dim) == (512, out)
    assert q.q_values(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape == (2, 6)
    # today's shape, as an option: the encoder's shared fc 512 below one noisy layer per stream
    old = _agent(make_cfg, "algo=rainbow", "network=nature_cnn", "algo.encoder_fc=true",
                 "algo.head_hidden_size=0", **pixels).q  # fmt: skip
    assert isinstance(old.encoder.fc, nn.Linear) and old.encoder.out_dim == 512
    assert isinstance(old.head.value, NoisyLinear) and (old.head.value.in_dim, old.head.value.out_dim) == (
        512,
        51,
    )


# -- the policy and one round of the learner -----------------------------------------------------


def test_epsilon_is_linear_in_env_steps_and_one_before_learning_starts() -> None:
    eps = EpsilonSchedule(initial=1.0, final=0.1, decay_env_steps=1000, start_env_steps=200)
    assert eps(0) == eps(199) == 1.0  # the Loop acts uniformly at random then
    assert [eps(200), eps(500), eps(1000), eps(5000)] == pytest.approx([0.82, 0.55, 0.1, 0.1])
    assert EpsilonSchedule(0.5, 0.1, decay_env_steps=0)(0) == pytest.approx(0.1)  # no decay: final at once


def test_policy_is_epsilon_greedy_with_fresh_noise_and_greedy_with_mean_weights(make_cfg) -> None:  # type: ignore[no-untyped-def]
    policy = _agent(make_cfg, "algo=dqn", "algo.noisy=true", "algo.epsilon_initial=0.0",
                    "algo.epsilon_final=0.0", "algo.learning_starts_env_steps=100").policy  # fmt: skip
    obs = torch.randn(4000, 3)
    layer = next(m for m in policy.modules() if isinstance(m, NoisyLinear))
    noise = layer.eps_in.clone()
    explored = policy.act(obs, None, True, 100)[0]
    assert not torch.equal(layer.eps_in, noise)  # a fresh draw for every act
    greedy = policy.act(obs, explore=False)[0]
    assert policy.training  # mode restored
    policy.eval()
    torch.testing.assert_close(greedy, policy.q.q_values(obs).argmax(-1))  # mean weights
    policy.train()
    assert torch.equal(policy.act(obs, explore=False)[0], greedy)
    assert not torch.equal(explored, greedy)  # noisy weights act differently
    uniform = policy.act(obs, None, True, 99)[0]  # before learning starts: epsilon 1
    assert 0.45 < uniform.float().mean().item() < 0.55
    # epsilon 0.3 without noise: a random action (which is the greedy one half the time) 30% of the time
    plain = _agent(make_cfg, "algo=dqn", "algo.epsilon_initial=0.3", "algo.epsilon_final=0.3",
                   "algo.learning_starts_env_steps=0").policy  # fmt: skip
    changed = (plain.act(obs, None, True, 0)[0] != plain.act(obs, explore=False)[0]).float().mean().item()
    assert changed == pytest.approx(0.15, abs=0.03)


def _fill(storage: Any, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        o = rng.standard_normal((1, 3)).astype(np.float32)
        storage.add(
            o, np.array([i % 2]), np.ones(1, np.float32), o, np.array([i % 7 == 6]), np.zeros(1, bool)
        )


def _round(built: Built, env_steps: int, count: int) -> dict[str, float]:
    return built.learner.training_step(ReplayBatches(built.storage, count, 8, env_steps, 0, 1), 0)


def test_round_syncs_the_target_by_env_steps_and_writes_priorities(make_cfg) -> None:  # type: ignore[no-untyped-def]
    built = _built(make_cfg, "algo=dqn", "replay=prioritized", "algo.learning_starts_env_steps=200",
                   "algo.target_update_period_env_steps=100", "algo.batch_size=8")  # fmt: skip
    learner: DQNLearner = built.learner  # type: ignore[assignment]
    learner._opts = learner.configure_optimizers()
    _fill(built.storage, 60)
    assert _round(built, 150, 0) == {"train/epsilon": 1.0}  # before learning starts: nothing else
    assert int(learner.last_target_sync) == 0
    online = [p.detach().clone() for p in learner.q.parameters()]
    priorities = built.storage.tree.nodes.copy()
    metrics = _round(built, 250, 3)
    assert set(metrics) == {"train/epsilon", "loss/q", "stats/q"}
    assert metrics["train/epsilon"] == learner.policy.epsilon(250) < 1.0
    assert int(learner.gradient_steps_done) == 3 and int(learner.last_target_sync) == 250
    for target, before, now in zip(
        learner.q_target.parameters(), online, learner.q.parameters(), strict=True
    ):
        assert torch.equal(target, before) and not torch.equal(now, before)  # synced, then 3 steps
    assert not np.array_equal(built.storage.tree.nodes, priorities)  # new priorities written back
    synced = [p.clone() for p in learner.q_target.parameters()]
    _round(built, 290, 1)  # same period: no sync
    assert all(torch.equal(a, b) for a, b in zip(learner.q_target.parameters(), synced, strict=True))
    _round(built, 300, 0)
    assert all(
        torch.equal(a, b) for a, b in zip(learner.q_target.parameters(), learner.q.parameters(), strict=True)
    )


def test_polyak_sync_compounds_over_the_periods_of_a_round(make_cfg) -> None:  # type: ignore[no-untyped-def]
    built = _built(make_cfg, "algo=dqn", "algo.learning_starts_env_steps=0", "algo.target_tau=0.5",
                   "algo.target_update_period_env_steps=100")  # fmt: skip
    learner: DQNLearner = built.learner  # type: ignore[assignment]
    learner._opts = learner.configure_optimizers()
    with torch.no_grad():
        for p in learner.q.parameters():
            p.add_(1.0)
    before = [p.clone() for p in learner.q_target.parameters()]
    _round(built, 250, 0)  # two periods crossed: 1 - (1 - 0.5)^2 = 0.75 of the way
    for t, b, q in zip(learner.q_target.parameters(), before, learner.q.parameters(), strict=True):
        torch.testing.assert_close(t, b + 0.75 * (q - b))


def test_anneal_lr_decays_linearly_to_zero_over_the_run(make_cfg) -> None:  # type: ignore[no-untyped-def]
    built = _built(make_cfg, "algo=dqn", "algo.anneal_lr=true", "algo.lr=1e-3", "trainer.total_env_steps=1000",
                   "algo.learning_starts_env_steps=0", "algo.batch_size=8")  # fmt: skip
    learner: DQNLearner = built.learner  # type: ignore[assignment]
    learner._opts = learner.configure_optimizers()
    _fill(built.storage, 20)
    assert _round(built, 250, 1)["train/lr"] == pytest.approx(7.5e-4)
    assert learner._opts[0].param_groups[0]["lr"] == pytest.approx(7.5e-4)
