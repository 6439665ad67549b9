"""Differentiable Neural Computer core (Graves et al. 2016, "Hybrid computing using a neural network
with dynamic external memory", Nature 538; equations from its Methods section).

An LSTM controller reads the input and the previous step's read vectors, and emits an interface
vector that drives one write head and ``R`` read heads over an ``N x W`` memory:

- content addressing: softmax over rows of ``beta * cosine(key, M[i])``;
- dynamic allocation: usage ``u`` rises where written and falls where freed (free gates times the
  previous read weights); allocation prefers the least-used rows;
- temporal links: ``L[i, j]`` ~ "row i was written right after row j"; reads can follow links
  forward or backward, mixed with content lookups by per-head read modes.

Output: ``[h_t, r_t]`` (controller output and read vectors; the paper's ``W_y`` and ``W_r`` output
matrices are the linear head that follows the core). Same interface as ``LSTMCore`` (see
``d2rl.modules.recurrent``); every state tensor carries the batch on dim 1.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from d2rl.modules.recurrent import State, step_with_sequence

EPS = 1e-6


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.square().sum(-1, keepdim=True) + EPS)


def content_weights(memory: torch.Tensor, keys: torch.Tensor, strengths: torch.Tensor) -> torch.Tensor:
    """``C(M, k, beta)``: ``memory`` ``[B, N, W]``, ``keys`` ``[B, K, W]``, ``strengths`` ``[B, K]`` ->
    ``[B, K, N]``, a softmax over rows of the scaled cosine similarity."""
    cosine = _unit(keys) @ _unit(memory).transpose(1, 2)
    return torch.softmax(strengths.unsqueeze(-1) * cosine, dim=-1)


def allocation_weights(usage: torch.Tensor) -> torch.Tensor:
    """``a[phi_j] = (1 - u[phi_j]) prod_{i<j} u[phi_i]`` with ``phi`` the rows sorted by usage
    (least used first); ``usage`` ``[B, N]`` -> ``[B, N]``."""
    usage = EPS + (1 - EPS) * usage  # keeps the products from collapsing to exact zeros
    sorted_usage, order = torch.sort(usage, dim=-1)
    before = torch.cumprod(sorted_usage, dim=-1)
    before = torch.cat([torch.ones_like(before[:, :1]), before[:, :-1]], dim=-1)  # exclusive product
    return torch.zeros_like(usage).scatter(-1, order, (1 - sorted_usage) * before)


class DNCCore(nn.Module):
    """Features ``[T, B, in_dim]`` + state -> ``[T, B, hidden_size + read_heads * word_size]`` + state.

    State: ``(h, c)`` of the controller ``[num_layers, B, hidden]``, then, each ``[1, B, ...]``:
    memory ``[N, W]``, usage ``[N]``, link ``[N, N]``, precedence ``[N]``, read weights ``[R, N]``,
    write weights ``[N]``, read vectors ``[R, W]``.
    """

    off_diagonal: torch.Tensor  # [N, N], a buffer

    def __init__(
        self,
        in_dim: int,
        hidden_size: int = 256,
        num_layers: int = 1,
        memory_slots: int = 32,
        word_size: int = 32,
        read_heads: int = 4,
    ) -> None:
        super().__init__()
        n, w, r = memory_slots, word_size, read_heads
        # LSTM cells (one per layer): the memory makes the core step by step, and per step a cell is
        # several times cheaper than a one-step nn.LSTM call on CPU
        self.controller = nn.ModuleList(
            nn.LSTMCell(in_dim + r * w if i == 0 else hidden_size, hidden_size) for i in range(num_layers)
        )
        for name, param in self.controller.named_parameters():
            if "bias" in name:
                nn.init.constant_(param, 0.0)
            elif "weight" in name:
                nn.init.orthogonal_(param, 1.0)
        # read keys, read strengths, write key, write strength, erase, write vector, free gates,
        # allocation gate, write gate, read modes (Methods, "Interface parameters")
        self.split = [r * w, r, w, 1, w, w, r, 1, 1, 3 * r]
        self.interface = nn.Linear(hidden_size, sum(self.split))
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.memory_slots, self.word_size, self.read_heads = n, w, r
        self.out_dim = hidden_size + r * w
        self.register_buffer("off_diagonal", 1 - torch.eye(n), persistent=False)  # [N, N]

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        b, n, w, r = batch_size, self.memory_slots, self.word_size, self.read_heads

        def zeros(*shape: int) -> torch.Tensor:
            return torch.zeros(*shape, device=device)

        hidden = (self.num_layers, b, self.hidden_size)
        return (
            zeros(*hidden),
            zeros(*hidden),
            zeros(1, b, n, w),  # memory
            zeros(1, b, n),  # usage
            zeros(1, b, n, n),  # link
            zeros(1, b, n),  # precedence
            zeros(1, b, r, n),  # read weights
            zeros(1, b, n),  # write weights
            zeros(1, b, r, w),  # read vectors
        )

    def _memory_step(self, xi: torch.Tensor, mem: list[torch.Tensor]) -> list[torch.Tensor]:
        """One write then read, from the interface vector ``xi`` ``[B, I]``; ``mem`` without the
        leading state dim: memory, usage, link, precedence, read weights, write weights, read vectors."""
        memory, usage, link, precedence, read_w, write_w, _ = mem
        b, r, w = xi.shape[0], self.read_heads, self.word_size
        parts = torch.split(xi, self.split, dim=-1)
        read_keys = parts[0].view(b, r, w)
        read_strengths = 1 + F.softplus(parts[1])  # oneplus, [B, R]
        write_key = parts[2].view(b, 1, w)
        write_strength = 1 + F.softplus(parts[3])  # [B, 1]
        erase = torch.sigmoid(parts[4])  # [B, W]
        write_vec = parts[5]  # [B, W]
        free_gates = torch.sigmoid(parts[6])  # [B, R]
        alloc_gate, write_gate = torch.sigmoid(parts[7]), torch.sigmoid(parts[8])  # [B, 1]
        read_modes = torch.softmax(parts[9].view(b, r, 3), dim=-1)  # backward, content, forward

        retention = torch.prod(1 - free_gates.unsqueeze(-1) * read_w, dim=1)  # psi, [B, N]
        usage = (usage + write_w - usage * write_w) * retention
        write_content = content_weights(memory, write_key, write_strength).squeeze(1)  # [B, N]
        alloc = allocation_weights(usage)
        write_w = write_gate * (alloc_gate * alloc + (1 - alloc_gate) * write_content)  # [B, N]
        memory = memory * (1 - write_w.unsqueeze(-1) * erase.unsqueeze(1)) + write_w.unsqueeze(
            -1
        ) * write_vec.unsqueeze(1)  # [B, N, W]

        link = (1 - write_w.unsqueeze(-1) - write_w.unsqueeze(1)) * link + write_w.unsqueeze(
            -1
        ) * precedence.unsqueeze(1)
        link = link * self.off_diagonal  # L[i, i] = 0
        precedence = (1 - write_w.sum(-1, keepdim=True)) * precedence + write_w

        forward = read_w @ link.transpose(1, 2)  # f = L w^r, [B, R, N]
        backward = read_w @ link  # b = L^T w^r
        read_content = content_weights(memory, read_keys, read_strengths)  # [B, R, N]
        read_w = (
            read_modes[..., 0:1] * backward
            + read_modes[..., 1:2] * read_content
            + read_modes[..., 2:3] * forward
        )
        read_vectors = read_w @ memory  # [B, R, W]
        return [memory, usage, link, precedence, read_w, write_w, read_vectors]

    def forward(
        self, x: torch.Tensor, state: State, episode_start: torch.Tensor
    ) -> tuple[torch.Tensor, State]:
        """``x``: ``[T, B, in_dim]``; ``episode_start``: ``[T, B]``, true where the state entering step
        t is reset. Returns ``[T, B, out_dim]`` and the final state."""
        h, c = state[0], state[1]
        mem = [s[0] for s in state[2:]]  # [B, ...] each
        keep = 1.0 - episode_start.float()  # [T, B]
        resets = episode_start.bool().any(dim=1).tolist()  # [T]: skip the masking where nothing resets
        outs = []
        for t in range(x.shape[0]):
            if resets[t]:
                k = keep[t]
                h, c = h * k.view(1, -1, 1), c * k.view(1, -1, 1)
                mem = [m * k.view(-1, *([1] * (m.dim() - 1))) for m in mem]
            inp = torch.cat([x[t], mem[-1].flatten(1)], -1)  # with the previous read vectors [B, R * W]
            hs, cs = [], []
            for i, cell in enumerate(self.controller):
                hi, ci = cell(inp, (h[i], c[i]))
                hs.append(hi)
                cs.append(ci)
                inp = hi
            h, c = torch.stack(hs), torch.stack(cs)
            mem = self._memory_step(self.interface(inp), mem)
            outs.append(torch.cat([inp, mem[-1].flatten(1)], -1))
        return torch.stack(outs), (h, c, *(m.unsqueeze(0) for m in mem))

    def step(self, x: torch.Tensor, state: State, episode_start: torch.Tensor) -> tuple[torch.Tensor, State]:
        """One acting step: ``x`` ``[B, in_dim]``, ``episode_start`` ``[B]`` -> ``[B, out_dim]``, state."""
        return step_with_sequence(self, x, state, episode_start)
