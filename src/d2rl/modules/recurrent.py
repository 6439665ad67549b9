"""Recurrent cores after any encoder, chosen by ``network.core=``: LSTM, GRU, DNC, transformer.

Every core has ``LSTMCore``'s interface (``d2rl.modules.lstm``), so recurrent learners (R2D2,
recurrent PPO) take any of them:

- ``core.out_dim``; ``core.initial_state(batch_size, device) -> state``;
- ``core(x [T, B, in_dim], state, episode_start [T, B]) -> (out [T, B, out_dim], state)``, where
  the state entering a step with ``episode_start`` true is the initial (zero) state;
- ``core.step(x [B, in_dim], state, episode_start [B]) -> (out [B, out_dim], state)``.

A state is a tuple of tensors, each with the batch on dim 1 (``[K, B, ...]``, as ``nn.LSTM``'s
``[num_layers, B, hidden]``): storage can keep and index every core's state the same way
(``index_state``). The zero state is the initial state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn

from d2rl.errors import D2RLError
from d2rl.modules.cnn import option
from d2rl.modules.lstm import LSTMCore, MaskedRNNCore

State = tuple[torch.Tensor, ...]  # each [K, B, ...]


class RecurrentCore(Protocol):
    out_dim: int

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> Any: ...

    def __call__(
        self, x: torch.Tensor, state: Any, episode_start: torch.Tensor
    ) -> tuple[torch.Tensor, Any]: ...

    def step(self, x: torch.Tensor, state: Any, episode_start: torch.Tensor) -> tuple[torch.Tensor, Any]: ...


def index_state(state: State, index: torch.Tensor | slice) -> State:
    """The states of the batch entries ``index`` (on dim 1 of every tensor)."""
    return tuple(s[:, index] for s in state)


def detach_state(state: State) -> State:
    return tuple(s.detach() for s in state)


def step_with_sequence(
    core: Any, x: torch.Tensor, state: Any, episode_start: torch.Tensor
) -> tuple[torch.Tensor, Any]:
    """``step`` through ``forward`` on a length-1 sequence."""
    out, state = core(x.unsqueeze(0), state, episode_start.unsqueeze(0))
    return out.squeeze(0), state


class GRUCore(MaskedRNNCore):
    """GRU (Cho et al. 2014) with state ``(h,)``."""

    def __init__(self, in_dim: int, hidden_size: int = 256, num_layers: int = 1) -> None:
        super().__init__(nn.GRU(in_dim, hidden_size, num_layers), "gru", 1)


def _lstm(cfg: Any, in_dim: int) -> nn.Module:
    return LSTMCore(in_dim, int(cfg.core_size), int(cfg.core_layers))


def _gru(cfg: Any, in_dim: int) -> nn.Module:
    return GRUCore(in_dim, int(cfg.core_size), int(cfg.core_layers))


def _dnc(cfg: Any, in_dim: int) -> nn.Module:
    from d2rl.modules.dnc import DNCCore

    return DNCCore(
        in_dim,
        hidden_size=int(cfg.core_size),
        num_layers=int(cfg.core_layers),
        memory_slots=int(cfg.dnc_memory_slots),
        word_size=int(cfg.dnc_word_size),
        read_heads=int(cfg.dnc_read_heads),
    )


def _transformer(cfg: Any, in_dim: int) -> nn.Module:
    from d2rl.modules.transformer import TransformerCore

    return TransformerCore(
        in_dim,
        dim=int(cfg.core_size),
        heads=int(cfg.transformer_heads),
        layers=int(cfg.core_layers),
        memory_steps=int(cfg.transformer_memory_steps),
    )


CORES: dict[str, Callable[[Any, int], nn.Module]] = {
    "lstm": _lstm,
    "gru": _gru,
    "dnc": _dnc,
    "transformer": _transformer,
}


def build_core(cfg: Any, in_dim: int) -> nn.Module | None:
    """The core ``network.core`` names, taking the encoder's ``in_dim`` features; None for ``none``."""
    name = str(option(cfg, "core", "none"))
    if name == "none":
        return None
    if name not in CORES:
        raise D2RLError(f"unknown network.core={name}; choose from none, {', '.join(CORES)}")
    return CORES[name](cfg, in_dim)
