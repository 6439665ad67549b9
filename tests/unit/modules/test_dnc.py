"""Differentiable Neural Computer: addressing by hand, a write-then-read by hand, and the copy task."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from d2rl.modules.dnc import DNCCore, allocation_weights, content_weights
from d2rl.modules.lstm import LSTMCore

BIG = 30.0  # a logit that saturates a sigmoid/softmax


def test_content_weights_are_a_softmax_of_scaled_cosines() -> None:
    memory = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]]])  # [B=1, N=3, W=2]
    keys = torch.tensor([[[3.0, 0.0]]])
    w = content_weights(memory, keys, torch.tensor([[2.0]]))
    expected = torch.softmax(torch.tensor([2.0, 0.0, -2.0]), 0)
    torch.testing.assert_close(w[0, 0], expected, rtol=1e-4, atol=1e-5)


def test_allocation_prefers_the_least_used_rows() -> None:
    usage = torch.tensor([[0.5, 0.1, 0.9]])
    # sorted: rows 1 (0.1), 0 (0.5), 2 (0.9): a = (1 - u) * product of the usages before it
    expected = torch.tensor([[0.5 * 0.1, 0.9, 0.1 * 0.1 * 0.5]])
    torch.testing.assert_close(allocation_weights(usage), expected, rtol=1e-4, atol=1e-5)


def _interface(core: DNCCore, **parts: torch.Tensor) -> torch.Tensor:
    """An interface vector ``[1, I]`` from named parts (zeros where not given)."""
    names = ["read_keys", "read_strengths", "write_key", "write_strength", "erase", "write_vector"]
    names += ["free_gates", "alloc_gate", "write_gate", "read_modes"]
    return torch.cat([parts.get(n, torch.zeros(size)) for n, size in zip(names, core.split, strict=True)])[
        None
    ]


def test_write_by_allocation_then_read_by_content_and_by_forward_link() -> None:
    core = DNCCore(2, hidden_size=4, memory_slots=4, word_size=3, read_heads=1)
    mem = [s[0] for s in core.initial_state(1)[2:]]
    u, v = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    common = {
        "alloc_gate": torch.tensor([BIG]),
        "write_gate": torch.tensor([BIG]),
        "erase": torch.full((3,), BIG),
        "free_gates": torch.tensor([-BIG]),
        "read_strengths": torch.tensor([BIG]),
    }
    content = torch.tensor([-BIG, BIG, -BIG])  # read modes: backward, content, forward
    mem = core._memory_step(_interface(core, write_vector=u, read_keys=u, read_modes=content, **common), mem)
    first = int(mem[5][0].argmax())  # the row written
    torch.testing.assert_close(mem[0][0, first], u, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(mem[-1][0, 0], u, rtol=1e-3, atol=1e-3)  # read back by content
    forward = torch.tensor([-BIG, -BIG, BIG])
    mem = core._memory_step(_interface(core, write_vector=v, read_modes=forward, **common), mem)
    second = int(mem[5][0].argmax())
    assert second != first  # allocation moved to an unused row
    assert mem[2][0, second, first] > 0.99  # link: `second` was written right after `first`
    torch.testing.assert_close(mem[-1][0, 0], v, rtol=1e-3, atol=1e-3)  # the forward link reads it
    assert mem[1][0, first] > 0.99 and mem[1][0, second] < 0.01  # usage lags one write (eq. 2)


# -- copy task (Graves et al. 2014, 2016) -----------------------------------------------------


def copy_batch(batch: int, length: int, bits: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``[2L + 2, B, bits + 2]``: a start marker, L random bit vectors, a delimiter, L blanks;
    targets ``[L, B, bits]``: the vectors again, after the delimiter."""
    seq = torch.randint(0, 2, (length, batch, bits), generator=g).float()
    x = torch.zeros(2 * length + 2, batch, bits + 2)
    x[0, :, bits] = 1.0
    x[1 : length + 1, :, :bits] = seq
    x[length + 1, :, bits + 1] = 1.0
    return x, seq


def train_copy(core: nn.Module, steps: int, length: int = 8, bits: int = 8, seed: int = 0) -> float:
    """Adam on the copy task; returns the bit error rate on 512 fresh sequences."""
    g = torch.Generator().manual_seed(seed)
    head = nn.Linear(core.out_dim, bits)
    params = [*core.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)

    def outputs(x: torch.Tensor) -> torch.Tensor:
        out, _ = core(x, core.initial_state(x.shape[1]), torch.zeros(x.shape[:2]))
        return head(out[length + 2 :])  # [L, B, bits]

    for _ in range(steps):
        x, seq = copy_batch(32, length, bits, g)
        loss = F.binary_cross_entropy_with_logits(outputs(x), seq)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
    with torch.no_grad():
        x, seq = copy_batch(512, length, bits, g)
        return ((outputs(x) > 0).float() != seq).float().mean().item()


@pytest.mark.slow
def test_dnc_learns_to_copy_8_vectors_where_an_lstm_of_its_size_does_not() -> None:
    """32 controller units, a 16 x 16 memory, one read head; copy 8 vectors of 8 bits; 600 Adam
    steps of 32 sequences each for both. Seen here (2 loaded CPU cores, 1 thread): DNC 0.0016 in 69 s,
    LSTM 0.31; other seeds: DNC 0.000-0.004 after 600 steps, while LSTMs of 32, 48 (as many
    parameters as the DNC) and 64 units were still at 0.235, 0.184 and 0.158 after 2000 steps."""
    torch.manual_seed(0)
    t0 = time.perf_counter()
    dnc_error = train_copy(DNCCore(10, hidden_size=32, memory_slots=16, word_size=16, read_heads=1), 600)
    dnc_s = time.perf_counter() - t0
    torch.manual_seed(0)
    lstm_error = train_copy(LSTMCore(10, hidden_size=32), 600)
    print(f"copy-8 bit error after 600 steps: DNC {dnc_error:.4f} ({dnc_s:.0f} s), LSTM {lstm_error:.4f}")
    assert dnc_error < 0.05
    assert lstm_error > 0.15
