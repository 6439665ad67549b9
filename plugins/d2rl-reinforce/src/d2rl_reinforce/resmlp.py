"""A residual MLP encoder with LayerNorm (pre-norm blocks, as in Xiong et al. 2020): the example
plugin's network, selectable as ``network=resmlp``."""

from __future__ import annotations

import math

import torch
from torch import nn

from d2rl.modules.mlp import orthogonal_init
from d2rl_reinforce.specs import ResMLPConfig


class ResidualBlock(nn.Module):
    """``x + W2 relu(W1 LayerNorm(x))``; keeps the width."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = orthogonal_init(nn.Linear(width, width))
        self.fc2 = orthogonal_init(nn.Linear(width, width), gain=0.1)  # near-identity at init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(torch.relu(self.fc1(self.norm(x))))


class ResMLP(nn.Module):
    """``[B, *obs_shape]`` -> ``[B, out_dim]``: a linear stem, ``num_blocks`` residual blocks, a final norm."""

    def __init__(self, in_dim: int, width: int, num_blocks: int) -> None:
        super().__init__()
        self.stem = orthogonal_init(nn.Linear(in_dim, width))
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(num_blocks)))
        self.norm = nn.LayerNorm(width)
        self.out_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.blocks(self.stem(x.flatten(1)))))


def build(cfg: ResMLPConfig, obs_shape: tuple[int, ...]) -> ResMLP:
    return ResMLP(math.prod(obs_shape), int(cfg.width), int(cfg.num_blocks))
