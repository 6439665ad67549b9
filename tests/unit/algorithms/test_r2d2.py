"""R2D2's pieces on tiny hand-made inputs: n-step targets within sequences, the learner's loss
against a step-by-step reference (burn-in from the stored state, rescaled double-Q targets, mixed
priorities), the per-env epsilons and the policy's state handling."""

from __future__ import annotations

import math

import pytest
import torch

from d2rl.algorithms.dqn import losses as L
from d2rl.algorithms.r2d2 import R2D2Config
from d2rl.algorithms.r2d2.learner import (
    R2D2Learner,
    R2D2Policy,
    RecurrentQNetwork,
    apex_epsilons,
    n_step_targets,
)
from d2rl.modules.lstm import LSTMCore
from d2rl.modules.mlp import MLP


def col(*xs: float) -> torch.Tensor:
    return torch.tensor(xs).unsqueeze(1)  # [T, 1]


def test_n_step_targets_by_hand() -> None:
    reward = col(1, 2, 3, 4, 5)
    no = col(0, 0, 0, 0, 0).bool()
    ret, disc, end, valid = n_step_targets(reward, no, no, ~no, n=2, gamma=0.5)
    assert ret[:, 0].tolist() == [2.0, 3.5, 5.0, 6.5, 5.0]  # r_t + 0.5 r_{t+1}
    assert disc[:, 0].tolist() == [0.25, 0.25, 0.25, 0.25, 0.5]
    assert end[:3, 0].tolist() == [2, 3, 4]
    assert valid[:, 0].tolist() == [True, True, True, False, False]  # s_5, s_6 are not in the sequence

    # an episode terminated after slot 1, then the final-obs slot and padding (mask 0)
    done = col(0, 1, 0, 0, 0).bool()
    mask = col(1, 1, 0, 0, 0).bool()
    ret, disc, end, valid = n_step_targets(reward, done, done, mask, n=3, gamma=0.5)
    assert ret[:2, 0].tolist() == [2.0, 2.0] and disc[:2, 0].tolist() == [0.0, 0.0]
    assert valid[:, 0].tolist() == [True, True, False, False, False]

    # truncated after slot 2: bootstrap from the final obs in slot 3
    done, term, mask = col(0, 0, 1, 0, 0).bool(), no, col(1, 1, 1, 0, 0).bool()
    ret, disc, end, valid = n_step_targets(reward, done, term, mask, n=3, gamma=0.5)
    assert ret[0, 0].item() == 1 + 1 + 0.75 and disc[0, 0].item() == 0.125 and end[0, 0].item() == 3
    assert ret[2, 0].item() == 3 and disc[2, 0].item() == 0.5 and end[2, 0].item() == 3
    assert valid[:, 0].tolist() == [True, True, True, False, False]


def _learner(cfg: R2D2Config) -> R2D2Learner:
    torch.manual_seed(0)
    enc = MLP(2, [8])
    q = RecurrentQNetwork(enc, LSTMCore(int(enc.out_dim), 5), 3, dueling=False, hidden=0)
    learner = R2D2Learner(cfg, R2D2Policy(q, 3, cfg))
    for p in learner.q_target.parameters():  # a target that differs from the online network
        p.data.add_(0.1 * torch.randn_like(p))
    return learner


def test_loss_matches_a_step_by_step_reference() -> None:
    cfg = R2D2Config(burn_in=3, seq_len=6, n_step=2, gamma=0.9, priority_eta=0.9)
    learner = _learner(cfg)
    T, B = cfg.burn_in + cfg.seq_len, 2
    g = torch.Generator().manual_seed(1)
    batch = {
        "obs": torch.randn(T, B, 2, generator=g),
        "action": torch.randint(0, 3, (T, B), generator=g),
        "reward": torch.randn(T, B, generator=g) * 5,
        "terminated": torch.zeros(T, B, dtype=torch.bool),
        "done": torch.zeros(T, B, dtype=torch.bool),
        "mask": torch.ones(T, B, dtype=torch.bool),
        "first": torch.zeros(T, B, dtype=torch.bool),
        "state": (torch.randn(1, B, 5, generator=g), torch.randn(1, B, 5, generator=g)),
    }
    # env 1: its episode terminates at slot 6 (then the final obs, padding)
    batch["terminated"][6, 1] = batch["done"][6, 1] = True
    batch["mask"][7:, 1] = False
    per_seq, prio, _ = learner.loss(batch)

    def unroll(net: RecurrentQNetwork, b: int) -> list[torch.Tensor]:
        state = tuple(s[:, b : b + 1] for s in batch["state"])
        qs = []
        for t in range(T):
            q, state = net.step(batch["obs"][t, b : b + 1], state)
            qs.append(q[0])
        return qs

    h, hinv = L.value_rescale, L.inverse_value_rescale
    with torch.no_grad():
        for b in range(B):
            q_on, q_tg = unroll(learner.q, b), unroll(learner.q_target, b)
            tds = []
            for t in range(cfg.burn_in, T):
                if not batch["mask"][t, b]:
                    continue
                ret, m, term = 0.0, 0, False
                while m < cfg.n_step and t + m < T and batch["mask"][t + m, b]:
                    ret += cfg.gamma**m * float(batch["reward"][t + m, b])
                    m += 1
                    if batch["done"][t + m - 1, b]:
                        term = bool(batch["terminated"][t + m - 1, b])
                        break
                if not term and t + m >= T:
                    continue  # no observation to bootstrap from in this sequence
                boot = 0.0
                if not term:
                    a_star = int(q_on[t + m].argmax())
                    boot = cfg.gamma**m * float(hinv(q_tg[t + m][a_star]))
                y = float(h(torch.tensor(ret + boot)))
                tds.append(float(q_on[t][int(batch["action"][t, b])]) - y)
            assert per_seq[b].item() == pytest.approx(sum(0.5 * d * d for d in tds) / len(tds), rel=1e-4)
            abs_td = [abs(d) for d in tds]
            expected = 0.9 * max(abs_td) + 0.1 * sum(abs_td) / len(abs_td)
            assert prio[b].item() == pytest.approx(expected, rel=1e-4)


def test_burn_in_gives_no_gradient_and_target_syncs_by_learner_steps() -> None:
    cfg = R2D2Config(burn_in=2, seq_len=3, n_step=1, target_update_period=2, lr=1e-2)
    learner = _learner(cfg)
    T, B = 5, 2
    batch = {
        "obs": torch.randn(T, B, 2, requires_grad=True),
        "action": torch.zeros(T, B, dtype=torch.long),
        "reward": torch.ones(T, B),
        "terminated": torch.zeros(T, B, dtype=torch.bool),
        "done": torch.zeros(T, B, dtype=torch.bool),
        "mask": torch.ones(T, B, dtype=torch.bool),
        "first": torch.zeros(T, B, dtype=torch.bool),
        "state": learner.q.initial_state(B),
    }
    per_seq, _, _ = learner.loss(batch)
    per_seq.sum().backward()
    assert batch["obs"].grad is not None
    assert batch["obs"].grad[:2].abs().sum() == 0 and batch["obs"].grad[2:].abs().sum() > 0
    batch["obs"] = batch["obs"].detach()
    opt = torch.optim.Adam(learner.q.parameters(), lr=1e-2)
    before = [p.clone() for p in learner.q_target.parameters()]
    learner.update(batch, opt)
    assert all(torch.equal(a, b) for a, b in zip(before, learner.q_target.parameters(), strict=True))
    learner.update(batch, opt)  # the second learner step copies the online network
    assert int(learner.updates_done) == 2
    assert all(
        torch.equal(a, b) for a, b in zip(learner.q.parameters(), learner.q_target.parameters(), strict=True)
    )


def test_apex_epsilons_per_env() -> None:
    eps = apex_epsilons(4, 0.4, 7.0)
    expected = [0.4 ** (1 + 7 * i / 3) for i in range(4)]
    assert eps.tolist() == pytest.approx(expected, rel=1e-6)
    assert apex_epsilons(1).tolist() == pytest.approx([0.4])
    # a distributed actor's slice of the global list
    assert apex_epsilons(2, offset=2, total=4).tolist() == pytest.approx(expected[2:], rel=1e-6)


def test_policy_explores_per_env_returns_its_state_and_resets_it() -> None:
    cfg = R2D2Config(learning_starts_env_steps=100)
    torch.manual_seed(0)
    enc = MLP(2, [8])
    policy = R2D2Policy(RecurrentQNetwork(enc, LSTMCore(int(enc.out_dim), 4), 4, False, 0), 4, cfg)
    obs = torch.randn(4, 2)
    state = policy.initial_state(4)
    greedy, extras, new_state = policy.act(obs, state, explore=False)
    assert extras["state"] is state and not torch.equal(new_state[0], state[0])
    policy.epsilons = torch.tensor([0.0, 0.0, 1.0, 1.0])
    differs = torch.zeros(4)
    for _ in range(200):
        a, _, _ = policy.act(obs, state, explore=True, env_step=100)
        differs += (a != greedy).float()
    assert differs[:2].sum() == 0 and (differs[2:] / 200 > 0.6).all()  # 3/4 of random actions differ
    random_phase = sum(
        float((policy.act(obs, state, True, 0)[0] != greedy).float().mean()) for _ in range(100)
    )
    assert math.isclose(random_phase / 100, 0.75, abs_tol=0.1)  # uniform before learning starts
    reset = policy.reset_state(new_state, torch.tensor([True, False, True, False]))
    assert reset[0][:, [0, 2]].abs().sum() == 0 and torch.equal(reset[1][:, 1], new_state[1][:, 1])
