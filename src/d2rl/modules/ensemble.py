"""Ensembles of MLPs evaluated in one batched matmul per layer (twin critics, Q ensembles).

On CPU with small batches, two separate critics cost two sets of Python/module calls; stacking
their weights as ``[E, in, out]`` runs all members with one ``baddbmm`` per layer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "elu": F.elu,
    "silu": F.silu,
}


class EnsembleMLP(nn.Module):
    """``E`` independent MLPs: ``[B, in]`` (shared input) or ``[E, B, in]`` -> ``[E, B, out]``.

    Each member is initialised like ``nn.Linear`` (uniform in +-1/sqrt(fan_in)), the init of the
    SAC/TD3 reference implementations. No activation after the last layer.
    """

    def __init__(
        self, members: int, in_dim: int, hidden_sizes: Sequence[int], out_dim: int, activation: str = "relu"
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}'; choose from {sorted(ACTIVATIONS)}")
        self.members, self.out_dim = members, out_dim
        self.act = ACTIVATIONS[activation]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        dims = [in_dim, *hidden_sizes, out_dim]
        for d_in, d_out in itertools.pairwise(dims):
            bound = 1.0 / math.sqrt(d_in)
            self.weights.append(nn.Parameter(torch.empty(members, d_in, d_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(members, 1, d_out).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        """``detach_params``: use the weights as constants (gradients flow to ``x`` only), e.g. for
        the actor loss ``-Q(s, pi(s))``, without toggling ``requires_grad`` on the critic."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.members, -1, -1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if detach_params:
                w, b = w.detach(), b.detach()
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = self.act(x)
        return x
