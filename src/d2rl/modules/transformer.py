"""Transformers (Vaswani et al. 2017) as an encoder over a set and as a recurrent core over time.

- ``TransformerNet`` (``network=transformer``): tokens are the positions of a conv feature map with
  their x/y coordinates appended (pixels ``[C, H, W]``; the relational network of Zambaldi et al.
  2019, "Deep RL with relational inductive biases"), or the rows of an entity observation
  ``[E, F]``; pre-LN blocks, a feature-wise max (or mean) over tokens, fc.
- ``TransformerCore`` (``network.core=transformer``): each step attends causally to itself and
  the previous ``memory_steps`` steps of its episode, with the per-layer memory of Transformer-XL
  (Dai et al. 2019) carried in the recurrent state, pre-LN blocks (Parisotto et al. 2020's TrXL-I)
  and a learned per-head bias for each relative distance. Stepping one step at a time and running
  a sequence give the same outputs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from d2rl.errors import D2RLError
from d2rl.modules.attention import TransformerBlock, TransformerEncoder
from d2rl.modules.cnn import finish_encoder, option, scale_pixels
from d2rl.modules.mlp import orthogonal_init
from d2rl.modules.recurrent import State, step_with_sequence
from d2rl.modules.regularization import norm2d
from d2rl.networks import TransformerConfig

STEM = [(8, 4), (4, 2), (3, 1)]  # (kernel, stride) of the pixel stem's convs; the last repeats


class TransformerNet(nn.Module):
    """``[B, C, H, W]`` uint8 pixels or ``[B, E, F]`` entities -> ``[B, features]``."""

    coords: torch.Tensor  # [1, 2, h, w], a buffer (pixels only)

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        dim: int = 64,
        heads: int = 4,
        layers: int = 2,
        mlp_ratio: int = 2,
        pool: str = "max",
        conv_channels: tuple[int, ...] = (32, 64),
        features: int = 256,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if pool not in ("max", "mean"):
            raise ValueError(f"unknown pooling '{pool}'; choose from max, mean")
        self.pixels = len(obs_shape) == 3
        if self.pixels:
            c = obs_shape[0]
            convs: list[nn.Module] = []
            for i, ch in enumerate(conv_channels):
                k, s = STEM[min(i, len(STEM) - 1)]
                convs += [
                    nn.Conv2d(c, ch, k, stride=s, bias=not batch_norm),
                    norm2d(batch_norm, ch),
                    nn.ReLU(),
                ]
                c = ch
            self.stem = nn.Sequential(*convs)
            h, w = _grid(self.stem, obs_shape)
            ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
            self.register_buffer(
                "coords", torch.stack([xs, ys]).unsqueeze(0), persistent=False
            )  # [1, 2, h, w]
            token_dim = c + 2
        else:
            token_dim = obs_shape[1]
        self.embed = nn.Linear(token_dim, dim)
        self.encoder = TransformerEncoder(dim, heads, layers, mlp_ratio)
        self.pool = pool
        self.fc = orthogonal_init(nn.Linear(dim, features))
        self.out_dim = features

    def tokens(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations -> tokens ``[B, N, token_dim]``."""
        if not self.pixels:
            return obs.float()  # [B, E, F]
        x = self.stem(scale_pixels(obs))  # [B, C', h, w]
        x = torch.cat([x, self.coords.expand(x.shape[0], -1, -1, -1)], 1)  # [B, C' + 2, h, w]
        return x.flatten(2).transpose(1, 2)  # [B, h * w, C' + 2]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        z = self.encoder(self.embed(self.tokens(obs)))  # [B, N, dim]
        z = z.amax(dim=1) if self.pool == "max" else z.mean(dim=1)
        return F.relu(self.fc(z))


def _grid(stem: nn.Module, obs_shape: tuple[int, ...]) -> tuple[int, int]:
    stem.eval()
    with torch.no_grad():
        shape = stem(torch.zeros(1, *obs_shape)).shape
    stem.train()
    return int(shape[2]), int(shape[3])


class TransformerCore(nn.Module):
    """Features ``[T, B, in_dim]`` + state -> ``[T, B, dim]`` + state.

    State: ``memory`` ``[layers, B, memory_steps, dim]`` (each layer's inputs at the previous steps)
    and ``valid`` ``[1, B, memory_steps]`` (1 where that step belongs to the current episode).
    """

    def __init__(
        self,
        in_dim: int,
        dim: int = 128,
        heads: int = 4,
        layers: int = 1,
        memory_steps: int = 32,
        mlp_ratio: int = 2,
    ) -> None:
        super().__init__()
        if memory_steps < 1:
            raise ValueError("a transformer core needs memory_steps >= 1")
        self.embed = nn.Linear(in_dim, dim)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.distance_bias = nn.Parameter(torch.zeros(heads, memory_steps + 1))  # [H, K + 1]
        self.dim, self.layers, self.memory_steps = dim, layers, memory_steps
        self.out_dim = dim

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        k = self.memory_steps
        return (
            torch.zeros(self.layers, batch_size, k, self.dim, device=device),
            torch.zeros(1, batch_size, k, device=device),
        )

    def forward(
        self, x: torch.Tensor, state: State, episode_start: torch.Tensor
    ) -> tuple[torch.Tensor, State]:
        """``x`` ``[T, B, in_dim]``; ``episode_start`` ``[T, B]``: step t attends to nothing before it."""
        memory, valid = state
        t, b = x.shape[:2]
        k = self.memory_steps
        episode = torch.cumsum(episode_start.bool().T.long(), dim=1)  # [B, T]; the memory is episode 0
        key_episode = torch.cat([episode.new_zeros(b, k), episode], 1)  # [B, K + T]
        key_ok = torch.cat([valid[0] > 0.5, torch.ones(b, t, dtype=torch.bool, device=x.device)], 1)
        distance = (k + torch.arange(t, device=x.device)).unsqueeze(1) - torch.arange(k + t, device=x.device)
        attend = (
            ((distance >= 0) & (distance <= k)).unsqueeze(0)  # causal, within the window
            & key_ok.unsqueeze(1)
            & (episode.unsqueeze(2) == key_episode.unsqueeze(1))  # no look across an episode start
        )  # [B, T, K + T]
        bias = self.distance_bias[:, distance.clamp(0, k)]  # [H, T, K + T]
        bias = bias.unsqueeze(0).masked_fill(~attend.unsqueeze(1), float("-inf"))  # [B, H, T, K + T]

        h = self.embed(x).transpose(0, 1)  # [B, T, dim]
        new_memory = []
        for layer, block in enumerate(self.blocks):
            context = torch.cat([memory[layer], h], 1)  # [B, K + T, dim]
            new_memory.append(context[:, -k:])
            h = block(h, context, bias)
        keep = (key_ok & (key_episode == episode[:, -1:]))[:, -k:]  # [B, K]: the last step's episode
        memory = torch.stack(new_memory) * keep[None, :, :, None]
        return self.norm(h).transpose(0, 1), (memory, keep.float().unsqueeze(0))

    def step(self, x: torch.Tensor, state: State, episode_start: torch.Tensor) -> tuple[torch.Tensor, State]:
        """One acting step: ``x`` ``[B, in_dim]``, ``episode_start`` ``[B]`` -> ``[B, dim]``, state."""
        return step_with_sequence(self, x, state, episode_start)


def build(cfg: TransformerConfig | Any, obs_shape: tuple[int, ...]) -> TransformerNet:
    if len(obs_shape) not in (2, 3):
        raise D2RLError(
            f"network=transformer needs pixels [C, H, W] or entity features [E, F], got shape {obs_shape}; "
            "use network=mlp for flat vectors"
        )
    channels = tuple(int(c) for c in cfg.conv_channels)
    if len(obs_shape) == 3:
        size = min(obs_shape[1:])
        for i in range(len(channels)):
            k, s = STEM[min(i, len(STEM) - 1)]
            size = (size - k) // s + 1
        if size < 1:
            raise D2RLError(f"network=transformer: images {obs_shape[1:]} are too small for the conv stem")
    net = TransformerNet(
        obs_shape,
        int(cfg.dim),
        int(cfg.heads),
        int(cfg.layers),
        int(cfg.mlp_ratio),
        str(option(cfg, "pool", "max")),
        channels,
        int(cfg.features),
        bool(option(cfg, "batch_norm", False)),
    )
    return finish_encoder(net, cfg)
