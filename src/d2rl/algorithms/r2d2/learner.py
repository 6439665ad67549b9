"""R2D2's recurrent Q-network, per-env epsilon-greedy policy, learner and builder (paper notes and
defaults: ``d2rl.algorithms.r2d2``).

One ``training_step`` gets a round's gradient steps as ``ReplayBatches`` of sequences
(``d2rl.buffers.sequence``, time-major ``[L, B, ...]``).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from d2rl.algorithms.dqn import losses as L
from d2rl.algorithms.r2d2 import R2D2Config
from d2rl.buffers.batches import ReplayBatches
from d2rl.buffers.sequence import SequenceBuilder, SequenceReplay, SequenceStorage, mixed_priority
from d2rl.core import BuildContext, Built, Learner, Policy, ReplaySchedule, check_stop
from d2rl.errors import D2RLError
from d2rl.modules.q_heads import QHead
from d2rl.modules.recurrent import build_core

State = tuple[torch.Tensor, ...]  # each [K, B, ...]


class RecurrentQNetwork(nn.Module):
    """``encoder -> core -> QHead``: observations ``[T, B, *obs]`` + state -> Q-values ``[T, B, A]``."""

    def __init__(
        self, encoder: nn.Module, core: nn.Module, num_actions: int, dueling: bool, hidden: int
    ) -> None:
        super().__init__()
        self.encoder, self.core = encoder, core
        self.head = QHead(int(core.out_dim), num_actions, 1, dueling, False, hidden)  # type: ignore[arg-type]

    def initial_state(self, batch_size: int) -> State:
        return tuple(self.core.initial_state(batch_size))  # type: ignore[operator]

    def forward(self, obs: torch.Tensor, state: State, first: torch.Tensor) -> tuple[torch.Tensor, State]:
        """``obs [T, B, *obs]``, ``first [T, B]`` (the state entering an episode's first step is reset)."""
        T, B = obs.shape[:2]
        features = self.encoder(obs.reshape(T * B, *obs.shape[2:]).float()).view(T, B, -1)
        out, state = self.core(features, state, first)
        return self.head(out).squeeze(-1), tuple(state)

    def step(self, obs: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One acting step: ``obs [B, *obs]`` -> ``[B, A]`` (the Loop resets ended episodes' states)."""
        first = torch.zeros(1, obs.shape[0], dtype=torch.bool, device=obs.device)
        q, state = self(obs.unsqueeze(0), state, first)
        return q.squeeze(0), state


def apex_epsilons(
    count: int, base: float = 0.4, alpha: float = 7.0, offset: int = 0, total: int = 0
) -> torch.Tensor:
    """Ape-X's ``base ** (1 + alpha i / (total - 1))`` for ``i = offset .. offset + count - 1`` (``total``
    defaults to ``count``; one explorer gets ``base``). ``[count]``."""
    from d2rl.distributed.exploration import actor_epsilon  # the one formula, for actors and envs

    total = total or count
    return torch.tensor([actor_epsilon(i, total, base, alpha) for i in range(offset, offset + count)])


class R2D2Policy(Policy):
    """Epsilon-greedy on the recurrent Q-values, one epsilon per env (``epsilons``, or Ape-X's for the
    batch size); uniform before ``learning_starts_env_steps``. ``extras["state"]``: the state acted from."""

    def __init__(self, q: RecurrentQNetwork, num_actions: int, cfg: R2D2Config) -> None:
        super().__init__()
        self.q, self.num_actions = q, num_actions
        self.learning_starts, self.eps_base, self.eps_alpha = (
            cfg.learning_starts_env_steps,
            cfg.epsilon_base,
            cfg.epsilon_alpha,
        )
        self.epsilons: torch.Tensor | None = None  # set by a distributed actor: its envs' epsilons

    def initial_state(self, batch_size: int) -> State:
        return self.q.initial_state(batch_size)

    def reset_state(self, state: Any, done: torch.Tensor) -> Any:
        keep = (~done.bool()).float()
        return tuple(s * keep.view(1, -1, *([1] * (s.dim() - 2))) for s in state)

    def act(
        self, obs: torch.Tensor, state: Any = None, explore: bool = True, env_step: int = 0
    ) -> tuple[torch.Tensor, dict[str, Any], Any]:
        n = obs.shape[0]
        if state is None:
            state = self.initial_state(n)
        q, new_state = self.q.step(obs, state)  # always: the state runs on while acting randomly
        action = q.argmax(-1)
        if explore:
            if env_step < self.learning_starts:
                eps = torch.ones(n)
            elif self.epsilons is not None and self.epsilons.shape[0] == n:
                eps = self.epsilons
            else:
                eps = apex_epsilons(n, self.eps_base, self.eps_alpha)
            random = torch.rand(n) < eps
            action = torch.where(random, torch.randint(self.num_actions, (n,)), action)
        return action, {"state": state}, new_state


def n_step_targets(
    reward: torch.Tensor,
    done: torch.Tensor,
    terminated: torch.Tensor,
    mask: torch.Tensor,
    n: int,
    gamma: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """n-step returns within sequences: ``[T, B]`` inputs (``mask``: real steps) ->
    ``ret`` (``sum_k gamma^k r_{t+k}`` up to ``m <= n`` steps, stopping after an episode's end),
    ``discount`` (``gamma^m``, 0 where the episode terminated within), ``end`` (slot ``t + m``, whose
    observation bootstraps) and ``valid`` (a real step whose target needs no slot beyond the sequence)."""
    T = reward.shape[0]
    mask, done, terminated = mask.bool(), done.bool(), terminated.bool()
    t = torch.arange(T, device=reward.device).unsqueeze(1).expand_as(reward)

    def ahead(x: torch.Tensor, k: int, fill: float | bool) -> torch.Tensor:  # x[t + k], fill beyond T
        pad = torch.full((k, *x.shape[1:]), fill, dtype=x.dtype, device=x.device)
        return torch.cat([x[k:], pad], 0)

    ret, disc = torch.zeros_like(reward), torch.ones_like(reward)
    end, term = t.clone(), torch.zeros_like(mask)
    alive = mask.clone()
    for k in range(n):
        step = alive & ahead(mask, k, False)
        ret = ret + torch.where(step, disc * ahead(reward, k, 0.0), 0.0)
        disc = torch.where(step, disc * gamma, disc)
        end = torch.where(step, t + k + 1, end)
        term = term | (step & ahead(terminated, k, False))
        alive = step & ~ahead(done, k, False)
    valid = mask & (term | (end < T))
    return ret, torch.where(term, 0.0, disc), end.clamp(max=T - 1), valid


class R2D2Learner(Learner):
    """Per batch of sequences: burn-in without gradient, the rescaled n-step double-Q loss on the
    rest, importance weights, a clipped Adam step, mixed sequence priorities."""

    policy: R2D2Policy
    updates_done: torch.Tensor

    def __init__(self, cfg: R2D2Config, policy: R2D2Policy) -> None:
        super().__init__()
        self.cfg, self.policy = cfg, policy
        self.q_target = copy.deepcopy(policy.q).requires_grad_(False)
        self.register_buffer("updates_done", torch.zeros((), dtype=torch.int64))
        self._opt: torch.optim.Optimizer | None = None

    @property
    def q(self) -> RecurrentQNetwork:
        return self.policy.q

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.q.parameters(), lr=self.cfg.lr, eps=self.cfg.adam_eps)

    def on_train_start(self) -> None:
        self._opt = self.raw_optimizers()[0]

    def sync_target(self) -> None:
        self.q_target.load_state_dict(self.q.state_dict())

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Per-sequence loss ``[B]``, priorities ``[B]`` and metrics for a sampled batch."""
        cfg, bi = self.cfg, self.cfg.burn_in
        obs, first, state = batch["obs"], batch["first"], tuple(batch["state"])
        with torch.no_grad():  # burn-in: both networks warm their state up from the stored one
            online_state, target_state = state, state
            if bi > 0:
                _, online_state = self.q(obs[:bi], state, first[:bi])
                _, target_state = self.q_target(obs[:bi], state, first[:bi])
            q_target, _ = self.q_target(obs[bi:], target_state, first[bi:])  # [L, B, A]
        q, _ = self.q(obs[bi:], online_state, first[bi:])  # [L, B, A]
        action = batch["action"][bi:].long()
        q_a = q.gather(2, action.unsqueeze(-1)).squeeze(-1)  # [L, B]
        with torch.no_grad():
            greedy = (q if cfg.double else q_target).argmax(-1, keepdim=True)
            next_v = q_target.gather(2, greedy).squeeze(-1)  # [L, B], the value of each slot's obs
            ret, disc, end, valid = n_step_targets(
                batch["reward"][bi:],
                batch["done"][bi:],
                batch["terminated"][bi:],
                batch["mask"][bi:],
                cfg.n_step,
                cfg.gamma,
            )
            boot = next_v.gather(0, end)
            if cfg.value_rescaling:
                eps = cfg.value_rescaling_eps
                y = L.value_rescale(ret + disc * L.inverse_value_rescale(boot, eps), eps)
            else:
                y = ret + disc * boot
        valid_f = valid.float()
        td = (q_a - y) * valid_f
        per_sequence = (0.5 * td.square()).sum(0) / valid_f.sum(0).clamp(min=1.0)  # [B]
        abs_td = td.detach().abs()
        priorities = mixed_priority(abs_td, valid, cfg.priority_eta)
        metrics = {
            "stats/q": (q_a.detach() * valid_f).sum() / valid_f.sum().clamp(min=1.0),
            "stats/abs_td": (abs_td.sum() / valid_f.sum().clamp(min=1.0)),
        }
        return per_sequence, priorities, metrics

    def update(
        self, batch: dict[str, Any], opt: torch.optim.Optimizer
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        device = self.device
        batch = {
            k: tuple(s.to(device) for s in v) if k == "state" else v.to(device, non_blocking=True)
            for k, v in batch.items()
        }
        per_sequence, priorities, metrics = self.loss(batch)
        loss = L.weighted_mean(per_sequence, batch.get("weights"))
        opt.zero_grad()
        loss.backward()
        if self.cfg.max_grad_norm > 0:
            nn.utils.clip_grad_norm_(self.q.parameters(), self.cfg.max_grad_norm, foreach=True)
        opt.step()
        self.updates_done += 1
        if int(self.updates_done) % self.cfg.target_update_period == 0:
            self.sync_target()
        metrics["loss/q"] = loss.detach()
        return priorities, metrics

    def training_step(self, experience: ReplayBatches, batch_idx: int) -> dict[str, float]:
        cfg = self.cfg
        metrics: dict[str, float] = {"train/replay_sequences": float(len(experience.storage))}
        if experience.env_steps < cfg.learning_starts_env_steps or len(experience.storage) == 0:
            return metrics
        opt = self._opt or self.raw_optimizers()[0]
        sums: dict[str, torch.Tensor] = {}
        n = 0
        for batch in experience:
            check_stop()
            priorities, step_metrics = self.update(batch, opt)
            experience.update_priorities(batch, priorities.cpu())
            for k, v in step_metrics.items():
                sums[k] = sums[k] + v if k in sums else v
            n += 1
        if n:
            metrics.update({k: float(v) / n for k, v in sums.items()})
        return metrics


def check(cfg: R2D2Config, ctx: BuildContext) -> None:
    """Refuse (one line) settings R2D2 cannot run."""
    if cfg.seq_len < 1 or cfg.burn_in < 0 or not 0 <= cfg.seq_overlap < cfg.seq_len:
        raise D2RLError(
            "r2d2 needs algo.seq_len >= 1, algo.burn_in >= 0 and 0 <= algo.seq_overlap < algo.seq_len; got "
            f"{cfg.seq_len}, {cfg.burn_in}, {cfg.seq_overlap}"
        )
    if cfg.n_step < 1 or cfg.update_period_env_steps < 1 or cfg.gradient_steps < 0:
        raise D2RLError("algo.n_step and algo.update_period_env_steps must be >= 1, gradient_steps >= 0")
    if cfg.target_update_period < 1 or cfg.batch_size < 1:
        raise D2RLError("algo.target_update_period and algo.batch_size must be >= 1")
    kind = str(ctx.replay_cfg.kind)
    if kind not in ("none", "uniform", "prioritized"):
        raise D2RLError(f"r2d2 supports replay=prioritized (its default) or replay=uniform, got '{kind}'")


def build(cfg: R2D2Config, ctx: BuildContext) -> Built:
    ctx.require(("discrete",), cfg.name)
    check(cfg, ctx)
    encoder = ctx.encoder()
    core = build_core(ctx.network_cfg, int(encoder.out_dim))  # type: ignore[arg-type]
    if core is None:
        raise D2RLError(
            "r2d2 needs a recurrent core: network.core=lstm (its default), gru, dnc or transformer"
        )
    q = RecurrentQNetwork(encoder, core, ctx.num_actions, cfg.dueling, cfg.head_hidden_size)
    policy = R2D2Policy(q, ctx.num_actions, cfg)
    storage = make_sequence_storage(cfg, ctx, [tuple(s.shape[:1] + s.shape[2:]) for s in q.initial_state(1)])
    schedule = ReplaySchedule(
        batch_size=cfg.batch_size,
        learning_starts_env_steps=cfg.learning_starts_env_steps,
        round_env_steps=cfg.iteration_env_steps,
        gradient_steps_per_env_step=cfg.gradient_steps / cfg.update_period_env_steps,
    )
    return Built(learner=R2D2Learner(cfg, policy), storage=storage, schedule=schedule)


def make_sequence_storage(
    cfg: R2D2Config, ctx: BuildContext, state_shapes: list[tuple[int, ...]], num_envs: int | None = None
) -> SequenceStorage:
    """Builder + replay for this env and core (``state_shapes``: each state tensor without the batch
    dim); ``replay.capacity`` env steps make ``capacity // (seq_len - seq_overlap)`` sequences."""
    space: Any = ctx.action_space
    obs_dtype = np.uint8 if ctx.observation_space.dtype == np.uint8 else np.float32
    act_shape, act_dtype = (
        tuple(space.shape or ()),
        np.int64 if isinstance(space, gym.spaces.Discrete) else np.float32,
    )
    builder = SequenceBuilder(
        num_envs or ctx.num_envs,
        cfg.seq_len,
        cfg.seq_overlap,
        cfg.burn_in,
        ctx.obs_shape,
        obs_dtype,
        act_shape,
        act_dtype,
    )
    replay = SequenceReplay(
        max(1, math.ceil(int(ctx.replay_cfg.capacity) / builder.stride)),
        builder.length,
        ctx.obs_shape,
        obs_dtype,
        act_shape,
        act_dtype,
        state_shapes,
        prioritized=str(ctx.replay_cfg.kind) != "uniform",
        alpha=cfg.priority_exponent,
        beta=cfg.importance_sampling_exponent,
        priority_eps=float(ctx.replay_cfg.priority_eps),
        seed=ctx.seed,
    )
    return SequenceStorage(builder, replay)
