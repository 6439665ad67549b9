"""Actor-critic with a recurrent core after the encoder(s): ``encoder -> core -> heads``.

Any core of ``d2rl.modules.recurrent`` (LSTM, GRU, DNC, transformer) plugs in. With separate
networks for actor and critic (``critic_encoder``/``critic_core`` given) each has its own core and
the state is the actor core's tensors followed by the critic core's; with a shared network the
state is the one core's. Every state tensor has the batch on dim 1 (``[K, B, ...]``).

Observations reach the model flat, ``[L * M, *obs]`` in time-major order (index ``t * M + m``):
the encoder runs on all of them at once, then the core over ``L`` steps of ``M`` sequences, with
the state entering step ``t`` of sequence ``m`` zeroed where ``first[t, m]`` (an episode starts).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from d2rl.modules.mlp import orthogonal_init

State = tuple[torch.Tensor, ...]


class RecurrentActorCritic(nn.Module):
    def __init__(
        self,
        actor_encoder: nn.Module,
        actor_core: nn.Module,
        policy_head: nn.Module,
        critic_encoder: nn.Module | None = None,
        critic_core: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if (critic_encoder is None) != (critic_core is None):
            raise ValueError("a separate critic needs both its encoder and its core")
        self.actor_encoder, self.actor_core = actor_encoder, actor_core
        self.critic_encoder, self.critic_core = critic_encoder, critic_core
        self.policy_head = policy_head
        out_dim: Any = (actor_core if critic_core is None else critic_core).out_dim
        self.value_head = orthogonal_init(nn.Linear(int(out_dim), 1), gain=1.0)
        self.actor_state_len = len(actor_core.initial_state(1))  # type: ignore[operator]

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        state = tuple(self.actor_core.initial_state(batch_size, device))  # type: ignore[operator]
        if self.critic_core is not None:
            state += tuple(self.critic_core.initial_state(batch_size, device))  # type: ignore[operator]
        return state

    def _run(
        self, encoder: nn.Module, core: nn.Module, obs: torch.Tensor, state: State, first: torch.Tensor
    ) -> tuple[torch.Tensor, State]:
        """``obs`` ``[L * M, *obs]``, ``first`` ``[L * M]``, ``state`` ``[K, M, ...]`` -> ``[L * M, F]``, state."""
        m = state[0].shape[1]
        x = encoder(obs)
        x = x.reshape(-1, m, x.shape[-1])  # [L, M, F]
        out, state = core(x, state, first.reshape(-1, m))
        return out.reshape(-1, out.shape[-1]), tuple(state)

    def features(
        self, obs: torch.Tensor, state: State, first: torch.Tensor, critic: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None, State]:
        """Actor features, critic features (None with ``critic=False`` on separate networks: the
        critic's state then passes through unchanged) and the state after the last step."""
        n = self.actor_state_len
        actor, actor_state = self._run(self.actor_encoder, self.actor_core, obs, state[:n], first)
        if self.critic_core is None:
            return actor, actor, actor_state
        assert self.critic_encoder is not None
        if not critic:
            return actor, None, actor_state + tuple(state[n:])
        value, critic_state = self._run(self.critic_encoder, self.critic_core, obs, state[n:], first)
        return actor, value, actor_state + critic_state

    def act(
        self, obs: torch.Tensor, state: State, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, State]:
        """One step of ``B`` envs: action ``[B, ...]``, its log-prob ``[B]``, value ``[B]``, new state."""
        first = torch.zeros(obs.shape[0], dtype=torch.bool, device=obs.device)
        actor, critic, state = self.features(obs, state, first)
        params = self.policy_head(actor)
        head: Any = self.policy_head
        action = head.mode(params) if deterministic else head.sample(params)
        assert critic is not None
        return action, head.log_prob(params, action), self.value_head(critic).squeeze(-1), state

    def dist_params(self, obs: torch.Tensor, state: State) -> tuple[Any, State]:
        """One step, actor only: the policy head's parameters and the new state."""
        first = torch.zeros(obs.shape[0], dtype=torch.bool, device=obs.device)
        actor, _, state = self.features(obs, state, first, critic=False)
        return self.policy_head(actor), state

    def evaluate_sequence(
        self, obs: torch.Tensor, action: torch.Tensor, first: torch.Tensor, state: State
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-prob, entropy and value ``[L * M]`` of the stored actions of ``M`` sequences of ``L``
        steps (time-major flat inputs) from their initial states ``[K, M, ...]``."""
        actor, critic, _ = self.features(obs, state, first)
        params = self.policy_head(actor)
        head: Any = self.policy_head
        assert critic is not None
        return head.log_prob(params, action), head.entropy(params), self.value_head(critic).squeeze(-1)

    def value(self, obs: torch.Tensor, state: State) -> torch.Tensor:
        """``[B, *obs]`` one step from ``state`` -> ``[B]``."""
        first = torch.zeros(obs.shape[0], dtype=torch.bool, device=obs.device)
        if self.critic_core is None:
            out, _ = self._run(self.actor_encoder, self.actor_core, obs, state, first)
        else:
            assert self.critic_encoder is not None
            n = self.actor_state_len
            out, _ = self._run(self.critic_encoder, self.critic_core, obs, state[n:], first)
        return self.value_head(out).squeeze(-1)

    def next_state(self, obs: torch.Tensor, state: State, first: torch.Tensor) -> State:
        """The state after one step on ``obs`` ``[B, *obs]`` (``first`` ``[B]`` resets first)."""
        n = self.actor_state_len
        _, actor_state = self._run(self.actor_encoder, self.actor_core, obs, state[:n], first)
        if self.critic_core is None:
            return actor_state
        assert self.critic_encoder is not None
        _, critic_state = self._run(self.critic_encoder, self.critic_core, obs, state[n:], first)
        return actor_state + critic_state


def reset_state(state: State, done: torch.Tensor) -> State:
    """Zero (the initial state of every core) the states of the envs where ``done`` ``[B]``."""
    keep = (~done.bool()).to(state[0].dtype)
    return tuple(s * keep.view(1, -1, *([1] * (s.dim() - 2))) for s in state)
