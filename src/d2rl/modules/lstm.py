"""LSTM core (Hochreiter & Schmidhuber 1997) that goes after any encoder, with episode-start masking.

Recurrent agents (R2D2, recurrent PPO) run ``encoder -> LSTMCore -> heads``. The state is zeroed
at every step that starts a new episode, so one sequence can span several episodes of a vector
env (as in the recurrent PPO of the baselines and CleanRL's ``ppo_atari_lstm``).
"""

from __future__ import annotations

import itertools
from typing import Any, TypeVar

import torch
from torch import nn

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each [num_layers, B, hidden]

RNNT = TypeVar("RNNT", bound=nn.RNNBase)


def orthogonal_rnn(rnn: RNNT) -> RNNT:
    """Orthogonal weights (gain 1), zero biases."""
    for name, param in rnn.named_parameters():
        if "bias" in name:
            nn.init.constant_(param, 0.0)
        elif "weight" in name:
            nn.init.orthogonal_(param, 1.0)
    return rnn


class MaskedRNNCore(nn.Module):
    """A torch RNN (``nn.LSTM``/``nn.GRU``) after any encoder, with episode-start masking: features
    ``[T, B, in_dim]`` + state (a tuple of ``[num_layers, B, hidden]``) -> ``[T, B, hidden]``."""

    def __init__(self, rnn: nn.RNNBase, attr: str, state_tensors: int) -> None:
        super().__init__()
        setattr(self, attr, orthogonal_rnn(rnn))  # keeps the state-dict keys "lstm.*" / "gru.*"
        self._attr, self._n = attr, state_tensors
        self.hidden_size, self.num_layers = rnn.hidden_size, rnn.num_layers
        self.out_dim = rnn.hidden_size

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, ...]:
        return tuple(
            torch.zeros(self.num_layers, batch_size, self.hidden_size, device=device) for _ in range(self._n)
        )

    def _run(
        self, x: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        out, new = getattr(self, self._attr)(x, state if self._n > 1 else state[0])
        return out, (tuple(new) if self._n > 1 else (new,))

    def forward(self, x: torch.Tensor, state: Any, episode_start: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """``x``: ``[T, B, in_dim]``; ``episode_start``: ``[T, B]`` bool/float, true where step t is an
        episode's first (the state entering it is zeroed). Returns ``[T, B, hidden]`` and the final state."""
        keep = (1.0 - episode_start.float()).unsqueeze(-1)  # [T, B, 1]
        # one fused call per segment between the steps where some env starts an episode
        cuts = (torch.nonzero(episode_start[1:].bool().any(1)).flatten() + 1).tolist()
        bounds = [0, *cuts, x.shape[0]]
        outs = []
        for a, b in itertools.pairwise(bounds):
            out, state = self._run(x[a:b], tuple(s * keep[a] for s in state))
            outs.append(out)
        return (outs[0] if len(outs) == 1 else torch.cat(outs, 0)), state

    def step(self, x: torch.Tensor, state: Any, episode_start: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """One acting step: ``x`` ``[B, in_dim]``, ``episode_start`` ``[B]`` -> ``[B, hidden]``, state."""
        out, state = self.forward(x.unsqueeze(0), state, episode_start.unsqueeze(0))
        return out.squeeze(0), state


class LSTMCore(MaskedRNNCore):
    """LSTM with state ``(h, c)``."""

    def __init__(self, in_dim: int, hidden_size: int = 256, num_layers: int = 1) -> None:
        super().__init__(nn.LSTM(in_dim, hidden_size, num_layers), "lstm", 2)
