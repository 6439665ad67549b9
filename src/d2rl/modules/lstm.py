"""LSTM core (Hochreiter & Schmidhuber 1997) that goes after any encoder, with episode-start masking.

Recurrent agents (R2D2, recurrent PPO) run ``encoder -> LSTMCore -> heads``. The state is zeroed
at every step that starts a new episode, so one sequence can span several episodes of a vector
env (as in the recurrent PPO of the baselines and CleanRL's ``ppo_atari_lstm``).
"""

from __future__ import annotations

from typing import TypeVar

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


class LSTMCore(nn.Module):
    """Features ``[T, B, in_dim]`` + state -> outputs ``[T, B, hidden_size]`` + new state."""

    def __init__(self, in_dim: int, hidden_size: int = 256, num_layers: int = 1) -> None:
        super().__init__()
        self.lstm = orthogonal_rnn(nn.LSTM(in_dim, hidden_size, num_layers))
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.out_dim = hidden_size

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        zeros = torch.zeros(self.num_layers, batch_size, self.hidden_size, device=device)
        return zeros, zeros.clone()

    def forward(
        self, x: torch.Tensor, state: State, episode_start: torch.Tensor
    ) -> tuple[torch.Tensor, State]:
        """``x``: ``[T, B, in_dim]``; ``episode_start``: ``[T, B]`` bool/float, true where step t is an
        episode's first (the state entering it is zeroed). Returns ``[T, B, hidden]`` and the final state."""
        h, c = state
        keep = (1.0 - episode_start.float()).unsqueeze(-1)  # [T, B, 1]
        if not bool(episode_start[1:].any()):  # fast path: one cuDNN/oneDNN call for the sequence
            h, c = h * keep[0], c * keep[0]
            out, (h, c) = self.lstm(x, (h, c))
            return out, (h, c)
        outs = []
        for t in range(x.shape[0]):
            h, c = h * keep[t], c * keep[t]
            out, (h, c) = self.lstm(x[t : t + 1], (h, c))
            outs.append(out)
        return torch.cat(outs, 0), (h, c)

    def step(self, x: torch.Tensor, state: State, episode_start: torch.Tensor) -> tuple[torch.Tensor, State]:
        """One acting step: ``x`` ``[B, in_dim]``, ``episode_start`` ``[B]`` -> ``[B, hidden]``, state."""
        out, state = self.forward(x.unsqueeze(0), state, episode_start.unsqueeze(0))
        return out.squeeze(0), state
