"""Every recurrent core (LSTM, GRU, DNC, transformer) has the LSTM core's interface and semantics."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from d2rl.errors import D2RLError
from d2rl.modules.cnn import NatureCNN
from d2rl.modules.dnc import DNCCore
from d2rl.modules.lstm import LSTMCore
from d2rl.modules.recurrent import GRUCore, build_core, detach_state, index_state
from d2rl.modules.transformer import TransformerCore
from d2rl.networks import ImpalaResNetConfig, MLPConfig

IN = 6
CORES = {
    "lstm": lambda: LSTMCore(IN, hidden_size=8),
    "gru": lambda: GRUCore(IN, hidden_size=8),
    "gru2": lambda: GRUCore(IN, hidden_size=8, num_layers=2),
    "dnc": lambda: DNCCore(IN, hidden_size=8, memory_slots=5, word_size=4, read_heads=2),
    "dnc2": lambda: DNCCore(IN, hidden_size=8, num_layers=2, memory_slots=5, word_size=4, read_heads=1),
    "transformer": lambda: TransformerCore(IN, dim=8, heads=2, layers=2, memory_steps=3),
}
params = pytest.mark.parametrize("make", CORES.values(), ids=CORES.keys())


def _random_state(core, batch: int):  # type: ignore[no-untyped-def]
    """A non-zero state, reached by running the core on random inputs."""
    _, state = core(torch.randn(4, batch, IN), core.initial_state(batch), torch.zeros(4, batch))
    return detach_state(state)


@params
def test_shapes_state_layout_and_gradients(make, assert_gradients) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    core = make()
    T, B = 5, 3
    x = torch.randn(T, B, IN)
    state = core.initial_state(B)
    assert isinstance(state, tuple) and all(s.shape[1] == B and not s.any() for s in state)
    out, new = core(x, state, torch.zeros(T, B))
    assert out.shape == (T, B, core.out_dim) and out.dtype == torch.float32
    assert [s.shape for s in new] == [s.shape for s in state]
    starts = torch.zeros(T, B)
    starts[2, 1] = 1.0
    assert_gradients(core, lambda: core(x, state, starts)[0].square().sum())


@params
def test_episode_start_zeroes_the_state_mid_sequence(make) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    core = make()
    T, B = 6, 2
    x = torch.randn(T, B, IN)
    state = _random_state(core, B)
    starts = torch.zeros(T, B)
    starts[3, 0] = 1.0
    out, _ = core(x, state, starts)
    fresh, _ = core(x[3:, :1], core.initial_state(1), torch.zeros(T - 3, 1))
    torch.testing.assert_close(out[3:, :1], fresh)  # env 0 from step 3 == a fresh start
    whole, _ = core(x[:, 1:], index_state(state, slice(1, 2)), torch.zeros(T, 1))
    torch.testing.assert_close(out[:, 1:], whole)  # env 1 never restarts
    before, _ = core(x[:3, :1], index_state(state, slice(0, 1)), torch.zeros(3, 1))
    torch.testing.assert_close(out[:3, :1], before)  # env 0 kept its state before step 3


@params
def test_step_by_step_equals_the_sequence(make) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(1)
    core = make()
    T, B = 5, 2
    x = torch.randn(T, B, IN)
    starts = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    state0 = _random_state(core, B)
    seq, final = core(x, state0, starts)
    state, outs = state0, []
    for t in range(T):
        o, state = core.step(x[t], state, starts[t])
        outs.append(o)
    torch.testing.assert_close(torch.stack(outs), seq, rtol=1e-5, atol=1e-5)
    for a, b in zip(state, final, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    a, _ = core(x[:1], state0, torch.ones(1, B))  # a start at t=0 ignores the incoming state
    b, _ = core(x[:1], core.initial_state(B), torch.zeros(1, B))
    torch.testing.assert_close(a, b)


@params
def test_deterministic_under_a_seed(make) -> None:  # type: ignore[no-untyped-def]
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        core = make()
        x = torch.randn(3, 2, IN)
        outs.append(core(x, core.initial_state(2), torch.zeros(3, 2))[0])
    torch.testing.assert_close(outs[0], outs[1])


def test_a_core_goes_after_a_pixel_encoder() -> None:
    torch.manual_seed(0)
    T, B = 3, 2
    enc = NatureCNN((4, 84, 84), features=16)
    core = GRUCore(enc.out_dim, hidden_size=8)
    obs = torch.randint(0, 256, (T, B, 4, 84, 84), dtype=torch.uint8)
    feats = enc(obs.flatten(0, 1)).view(T, B, -1)  # [T * B, F] -> [T, B, F]
    out, _ = core(feats, core.initial_state(B), torch.zeros(T, B))
    out.sum().backward()
    assert enc.fc.weight.grad is not None


def test_build_core_reads_the_network_config() -> None:
    assert build_core(MLPConfig(), 4) is None
    kinds = {"lstm": LSTMCore, "gru": GRUCore, "dnc": DNCCore, "transformer": TransformerCore}
    for name, cls in kinds.items():
        cfg = dataclasses.replace(ImpalaResNetConfig(), core=name, core_size=16, core_layers=2)
        core = build_core(cfg, 10)
        assert isinstance(core, cls)
    dnc = build_core(
        dataclasses.replace(MLPConfig(), core="dnc", core_size=16, dnc_read_heads=3, dnc_word_size=5), 4
    )
    assert dnc is not None and dnc.out_dim == 16 + 3 * 5
    with pytest.raises(D2RLError, match="unknown network.core=nope"):
        build_core(dataclasses.replace(MLPConfig(), core="nope"), 4)
