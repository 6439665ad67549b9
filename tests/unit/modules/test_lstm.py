"""LSTM core: shapes, episode-start masking resets the state, gradients reach every parameter."""

from __future__ import annotations

import torch

from d2rl.modules.cnn import NatureCNN
from d2rl.modules.lstm import LSTMCore


def test_shapes_and_gradients_after_an_encoder() -> None:
    torch.manual_seed(0)
    T, B = 5, 3
    enc = NatureCNN((4, 84, 84), features=64)
    core = LSTMCore(enc.out_dim, hidden_size=32)
    obs = torch.randint(0, 256, (T, B, 4, 84, 84), dtype=torch.uint8)
    feats = enc(obs.flatten(0, 1)).view(T, B, -1)  # [T * B, F] -> [T, B, F]
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[2, 1] = True
    out, (h, c) = core(feats, core.initial_state(B), starts)
    assert out.shape == (T, B, 32) and h.shape == (1, B, 32) and c.shape == (1, B, 32)
    out.square().sum().backward()
    for name, p in [*enc.named_parameters(), *core.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_episode_start_zeroes_the_state_mid_sequence() -> None:
    torch.manual_seed(0)
    T, B, F = 6, 2, 4
    core = LSTMCore(F, hidden_size=8)
    x = torch.randn(T, B, F)
    state = (torch.randn(1, B, 8), torch.randn(1, B, 8))
    starts = torch.zeros(T, B)
    starts[3, 0] = 1.0  # env 0 starts a new episode at step 3
    out, _ = core(x, state, starts)
    # env 0 from step 3 on == a fresh run on steps 3.. from the zero state
    fresh, _ = core(x[3:, :1], core.initial_state(1), torch.zeros(T - 3, 1))
    torch.testing.assert_close(out[3:, :1], fresh)
    # env 1 never restarts == one run over the whole sequence from its state
    whole, _ = core(x[:, 1:], (state[0][:, 1:], state[1][:, 1:]), torch.zeros(T, 1))
    torch.testing.assert_close(out[:, 1:], whole)
    # and env 0 before step 3 kept its initial state (not zeroed)
    before, _ = core(x[:3, :1], (state[0][:, :1], state[1][:, :1]), torch.zeros(3, 1))
    torch.testing.assert_close(out[:3, :1], before)


def test_step_by_step_equals_the_sequence_and_start_at_t0_resets() -> None:
    torch.manual_seed(1)
    core = LSTMCore(3, hidden_size=5)
    x = torch.randn(4, 2, 3)
    starts = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    state0 = (torch.randn(1, 2, 5), torch.randn(1, 2, 5))
    seq, final = core(x, state0, starts)
    state, outs = state0, []
    for t in range(4):
        o, state = core.step(x[t], state, starts[t])
        outs.append(o)
    torch.testing.assert_close(torch.stack(outs), seq)
    torch.testing.assert_close(state[0], final[0])
    # a start at t=0 ignores the incoming state
    a, _ = core(x[:1], state0, torch.ones(1, 2))
    b, _ = core(x[:1], core.initial_state(2), torch.zeros(1, 2))
    torch.testing.assert_close(a, b)
