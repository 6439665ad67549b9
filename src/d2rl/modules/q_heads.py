"""Action-value heads: plain / dueling / noisy Q, categorical (C51) atoms, quantile embeddings.

All take encoder features ``[B, F]``; plain args, never a config object.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class NoisyLinear(nn.Module):
    """Linear layer with factorised Gaussian parameter noise (Fortunato et al. 2018, eq. 10-11).

    ``y = (mu_w + sigma_w * eps_w) x + mu_b + sigma_b * eps_b``; ``reset_noise`` draws new eps.
    In eval mode the noise is off (the mean network acts).
    """

    eps_in: torch.Tensor
    eps_out: torch.Tensor

    def __init__(self, in_dim: int, out_dim: int, sigma0: float = 0.5) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        bound = 1.0 / math.sqrt(in_dim)
        self.weight_mu = nn.Parameter(torch.empty(out_dim, in_dim).uniform_(-bound, bound))
        self.weight_sigma = nn.Parameter(torch.full((out_dim, in_dim), sigma0 / math.sqrt(in_dim)))
        self.bias_mu = nn.Parameter(torch.empty(out_dim).uniform_(-bound, bound))
        self.bias_sigma = nn.Parameter(torch.full((out_dim,), sigma0 / math.sqrt(in_dim)))
        self.register_buffer("eps_in", torch.zeros(in_dim), persistent=False)
        self.register_buffer("eps_out", torch.zeros(out_dim), persistent=False)
        self.reset_noise()

    @staticmethod
    def _scaled(n: int) -> torch.Tensor:
        x = torch.randn(n)
        return x.sign() * x.abs().sqrt()

    def reset_noise(self) -> None:
        self.eps_in.copy_(self._scaled(self.in_dim))
        self.eps_out.copy_(self._scaled(self.out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.linear(x, self.weight_mu, self.bias_mu)
        weight = self.weight_mu + self.weight_sigma * torch.outer(self.eps_out, self.eps_in)
        bias = self.bias_mu + self.bias_sigma * self.eps_out
        return F.linear(x, weight, bias)


def noisy_layers(module: nn.Module) -> list[NoisyLinear]:
    """The NoisyLinear layers of ``module`` (a list to reset without walking the module tree each step)."""
    return [m for m in module.modules() if isinstance(m, NoisyLinear)]


def reset_noise(module: nn.Module) -> None:
    """Draw fresh noise in every NoisyLinear of ``module``."""
    for m in noisy_layers(module):
        m.reset_noise()


def _linear(in_dim: int, out_dim: int, noisy: bool) -> nn.Module:
    return NoisyLinear(in_dim, out_dim) if noisy else nn.Linear(in_dim, out_dim)


def without_final_fc(encoder: nn.Module) -> nn.Module:
    """``encoder`` with its final fully connected layer ``fc`` replaced by the identity.

    The pixel encoders (``modules/cnn.py``) end in ``relu(fc(x))`` with ``x >= 0`` (a ReLU'd conv
    trunk, flattened or pooled), so what is left is exactly the trunk's features; ``out_dim`` follows.
    The dueling, noisy-net and Rainbow papers put their (noisy) 512-unit hidden layers there, one
    per stream (``QHead(hidden_size=512)``). An encoder without ``fc`` (the MLP) is returned as is.
    """
    fc = getattr(encoder, "fc", None)
    if isinstance(fc, nn.Linear):
        encoder.fc = nn.Identity()
        encoder.out_dim = fc.in_features  # type: ignore[assignment]  # a plain int attribute
    return encoder


class QHead(nn.Module):
    """Features ``[..., F]`` -> ``[..., A, K]`` (``K`` atoms per action; 1 for plain Q).

    ``dueling``: ``V [..., 1, K] + A [..., A, K] - mean_a A`` (Wang et al. 2016, eq. 9);
    ``hidden_size > 0`` puts one ReLU layer in front, in each stream when dueling, noisy when
    ``noisy`` (Wang et al. 2016 and Hessel et al. 2018: 512 units per stream on the conv trunk).
    """

    def __init__(
        self,
        in_dim: int,
        num_actions: int,
        atoms: int = 1,
        dueling: bool = False,
        noisy: bool = False,
        hidden_size: int = 0,
    ) -> None:
        super().__init__()
        self.num_actions, self.atoms, self.dueling = num_actions, atoms, dueling

        def stream(out: int) -> nn.Module:
            if hidden_size <= 0:
                return _linear(in_dim, out, noisy)
            return nn.Sequential(
                _linear(in_dim, hidden_size, noisy), nn.ReLU(), _linear(hidden_size, out, noisy)
            )

        self.advantage = stream(num_actions * atoms)
        self.value = stream(atoms) if dueling else None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        lead = features.shape[:-1]
        adv = self.advantage(features).view(*lead, self.num_actions, self.atoms)
        if self.value is None:
            return adv
        value = self.value(features).view(*lead, 1, self.atoms)
        return value + adv - adv.mean(-2, keepdim=True)


class CosineEmbedding(nn.Module):
    """Quantile fractions ``tau [B, T]`` -> ``ReLU(W cos(pi i tau) + b)`` ``[B, T, F]`` (IQN eq. 4)."""

    freqs: torch.Tensor

    def __init__(self, out_dim: int, num_cosines: int = 64) -> None:
        super().__init__()
        self.register_buffer("freqs", math.pi * torch.arange(num_cosines, dtype=torch.float32))
        self.linear = nn.Linear(num_cosines, out_dim)

    def forward(self, tau: torch.Tensor) -> torch.Tensor:
        return F.relu(self.linear(torch.cos(tau.unsqueeze(-1) * self.freqs)))


class FractionProposal(nn.Module):
    """Features ``[B, F]`` -> fractions ``tau [B, N+1]`` (0 = tau_0 < ... < tau_N = 1),
    midpoints ``tau_hat [B, N]`` and the proposal's entropy ``[B]`` (FQF, Yang et al. 2019, sec. 3.2)."""

    def __init__(self, in_dim: int, num_fractions: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, num_fractions)
        nn.init.xavier_uniform_(self.linear.weight, gain=0.01)
        nn.init.zeros_(self.linear.bias)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        log_p = torch.log_softmax(self.linear(features), dim=-1)
        p = log_p.exp()
        tau = F.pad(torch.cumsum(p, dim=-1), (1, 0))
        tau = torch.cat([tau[:, :-1], torch.ones_like(tau[:, -1:])], dim=-1)  # exact 1 at the end
        tau_hat = (tau[:, :-1] + tau[:, 1:]) / 2
        entropy = -(p * log_p).sum(-1)
        return tau, tau_hat, entropy
