"""DQN and its extensions as switches on one implementation.

- DQN (Mnih et al. 2015): target network, Huber loss, epsilon-greedy with a linear schedule.
- Double DQN (van Hasselt et al. 2016, ``double``), dueling heads (Wang et al. 2016, ``dueling``),
  noisy nets (Fortunato et al. 2018, ``noisy``), C51 (Bellemare et al. 2017,
  ``distributional=c51``), n-step returns (``n_step``), prioritized replay (Schaul et al. 2016,
  ``replay=prioritized``); all of them together is Rainbow (Hessel et al. 2018, ``algo=rainbow``).
- IQN (Dabney et al. 2018, ``distributional=iqn``) and FQF (Yang et al. 2019, ``distributional=fqf``).
- Munchausen RL (Vieillard et al. 2020, ``munchausen``): M-DQN, and M-IQN with ``distributional=iqn``.

Deviations: one iteration collects ``iteration_env_steps`` env steps with the current policy,
then runs the gradient steps owed for them (``gradient_steps`` per ``update_period_env_steps``),
so updates lag acting by up to one iteration (as in stable-baselines3 with ``train_freq`` of the
same size); the target network is synced between iterations whenever
``target_update_period_env_steps`` env steps have passed. PER priorities are ``|TD error|`` for
scalar heads and the per-sample loss for distributional ones (as in Rainbow). The Munchausen
bonus is added to the first reward of an n-step return only. FQF's fraction network reads
detached encoder features and has its own RMSprop optimizer (as in the paper); its loss is
weighted by the PER importance weights like the quantile loss (as in the widely used
``ku2482/fqf-iqn-qrdqn.pytorch``) and the gradient-norm clip covers only the parameters the main step updates.
IQN picks the greedy next action from K = ``num_policy_quantiles`` fresh samples, drawn apart
from the N' = ``num_target_quantiles`` samples of the target distribution (Dabney et al. 2018,
Algorithm 1; Dopamine's ``num_quantile_samples``).

Architecture: with a pixel encoder, ``encoder_fc=false`` drops the encoder's fc layer and
``head_hidden_size=512`` gives each stream its own (noisy) 512-unit hidden layer on the conv
trunk, the shape of Wang et al. 2016, Fortunato et al. 2018 and Hessel et al. 2018 (``algo=rainbow``
sets both). ``encoder_fc=true head_hidden_size=0`` (the ``dqn`` defaults) keeps Mnih et al.'s
shared fc 512 below linear output layers. MLP encoders have no fc layer to drop: the head's
hidden layer goes on top of them.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from d2rl.agent import Agent
from d2rl.algorithms import dqn_losses as L
from d2rl.buffers import make_replay
from d2rl.buffers.prioritized import PrioritizedReplayBuffer
from d2rl.buffers.replay import ReplayBuffer
from d2rl.config import ReplayConfig
from d2rl.envs import EnvFacts, obs_shape
from d2rl.errors import D2RLError
from d2rl.modules.q_heads import CosineEmbedding, FractionProposal, QHead, reset_noise, without_final_fc
from d2rl.registry import LegacyAlgorithmSpec as AlgorithmSpec
from d2rl.transition_collector import TransitionCollector

log = logging.getLogger(__name__)

DISTRIBUTIONAL = ("none", "c51", "iqn", "fqf")


@dataclass
class DQNConfig:
    name: str = "dqn"
    lr: float = 1e-4  # Adam; Mnih et al. used RMSprop 2.5e-4, CleanRL/SB3 Adam 1e-4
    anneal_lr: bool = False  # linear decay of lr to 0 over the run (as PPO's anneal_lr)
    adam_eps: float = 1e-8  # Rainbow: 1.5e-4
    gamma: float = 0.99
    batch_size: int = 32
    learning_starts_env_steps: int = 10_000  # random actions and no updates before this
    update_period_env_steps: int = 4  # a round of `gradient_steps` updates per this many env steps
    gradient_steps: int = 1
    target_update_period_env_steps: int = 1_000
    target_tau: float = 1.0  # 1: hard copy; < 1: Polyak averaging at each sync
    max_grad_norm: float = 10.0
    iteration_env_steps: int = 256  # env steps per training_step (rounded up to a multiple of num_envs)
    # exploration: epsilon from initial to final over the first `exploration_fraction` of the run
    epsilon_initial: float = 1.0
    epsilon_final: float = 0.05
    exploration_fraction: float = 0.1
    # Rainbow components
    double: bool = False
    dueling: bool = False
    noisy: bool = False
    n_step: int = 1
    distributional: str = "none"  # none | c51 | iqn | fqf
    num_atoms: int = 51  # C51
    v_min: float = -10.0
    v_max: float = 10.0
    head_hidden_size: int = 0  # > 0: a ReLU layer inside the head (per dueling stream); Rainbow: 512
    encoder_fc: bool = True  # false: drop a pixel encoder's fc layer (the head sits on the conv trunk)
    # quantile heads (IQN: N, N', K of Dabney et al.; FQF: N fractions)
    num_quantiles: int = 32
    num_target_quantiles: int = 32
    num_policy_quantiles: int = 32
    num_cosines: int = 64
    kappa: float = 1.0
    fraction_lr: float = 2.5e-9  # FQF fraction proposal network (RMSprop), Yang et al.
    fraction_entropy_coef: float = 0.0
    # Munchausen (Vieillard et al. 2020: alpha 0.9, tau 0.03, l0 -1)
    munchausen: bool = False
    munchausen_alpha: float = 0.9
    munchausen_tau: float = 0.03
    munchausen_clip: float = -1.0


class QNetwork(nn.Module):
    """Encoder + Q head; ``q_values(obs) [B, A]`` whatever the head (mean of the distribution)."""

    support: torch.Tensor

    def __init__(
        self,
        encoder: nn.Module,
        num_actions: int,
        distributional: str,
        dueling: bool,
        noisy: bool,
        hidden_size: int,
        num_atoms: int,
        v_min: float,
        v_max: float,
        num_cosines: int,
        num_fractions: int,
        num_policy_quantiles: int,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.kind = distributional
        self.num_policy_quantiles = num_policy_quantiles
        dim = int(encoder.out_dim)  # type: ignore[arg-type]
        atoms = num_atoms if distributional == "c51" else 1
        self.head = QHead(dim, num_actions, atoms, dueling, noisy, hidden_size)
        self.register_buffer("support", torch.linspace(v_min, v_max, num_atoms))
        self.embedding = CosineEmbedding(dim, num_cosines) if distributional in ("iqn", "fqf") else None
        self.fractions = FractionProposal(dim, num_fractions) if distributional == "fqf" else None

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        return self.encoder(obs.float())

    def quantiles(self, features: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
        """Features ``[B, F]``, fractions ``[B, T]`` -> quantile values ``[B, T, A]``."""
        assert self.embedding is not None
        return self.head(features.unsqueeze(1) * self.embedding(taus)).squeeze(-1)

    def q_from_features(self, f: torch.Tensor) -> torch.Tensor:
        if self.kind == "none":
            return self.head(f).squeeze(-1)
        if self.kind == "c51":
            return (torch.softmax(self.head(f), dim=-1) * self.support).sum(-1)
        if self.kind == "iqn":
            taus = torch.rand(f.shape[0], self.num_policy_quantiles)
            return self.quantiles(f, taus).mean(1)
        assert self.fractions is not None
        tau, tau_hat, _ = self.fractions(f.detach())
        return ((tau[:, 1:] - tau[:, :-1]).unsqueeze(-1) * self.quantiles(f, tau_hat)).sum(1)

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q_from_features(self.features(obs))


class DQNAgent(Agent):
    uses_replay = True
    gradient_steps_done: torch.Tensor
    updates_owed: torch.Tensor
    last_target_sync: torch.Tensor

    def __init__(
        self,
        q: QNetwork,
        cfg: DQNConfig,
        buffer: ReplayBuffer,
        num_actions: int,
        num_envs: int,
        total_env_steps: int,
        beta_schedule: tuple[float, float],
        save_buffer: bool,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.cfg = cfg
        self.q = q
        self.q_target = copy.deepcopy(q)
        self.q_target.requires_grad_(False)
        self.buffer = buffer
        self.num_actions, self.num_envs = num_actions, num_envs
        self.total_env_steps = total_env_steps
        self.beta_schedule = beta_schedule
        self.save_buffer = save_buffer
        self.vector_steps = max(1, -(-cfg.iteration_env_steps // num_envs))
        # persistent counters (checkpointed with the weights)
        self.register_buffer("gradient_steps_done", torch.zeros((), dtype=torch.int64))
        self.register_buffer("updates_owed", torch.zeros((), dtype=torch.float64))
        self.register_buffer("last_target_sync", torch.zeros((), dtype=torch.int64))
        self.collector: TransitionCollector | None = None
        self.rng = np.random.default_rng(0)
        self.timings.update({"env": 0.0, "act": 0.0, "store": 0.0, "sample": 0.0})

    @classmethod
    def from_config(  # type: ignore[override]
        cls,
        algo_cfg: Any,
        network: Any,
        network_cfg: Any,
        observation_space: gym.Space,
        action_space: gym.Space,
        num_envs: int,
        total_env_steps: int,
        replay_cfg: Any = None,
        env_facts: EnvFacts | None = None,
    ) -> DQNAgent:
        cfg = DQNConfig(**{k: algo_cfg[k] for k in algo_cfg})
        rcfg = (
            ReplayConfig(**{k: replay_cfg[k] for k in replay_cfg})
            if replay_cfg is not None
            else ReplayConfig()
        )
        if not isinstance(action_space, gym.spaces.Discrete):
            raise D2RLError(
                f"dqn needs a Discrete action space, got {action_space}; use sac or td3 for Box actions"
            )
        if cfg.distributional not in DISTRIBUTIONAL:
            raise D2RLError(
                f"algo.distributional must be one of {', '.join(DISTRIBUTIONAL)}, got '{cfg.distributional}'"
            )
        if cfg.munchausen and cfg.distributional in ("c51", "fqf"):
            raise D2RLError("algo.munchausen works with distributional=none (M-DQN) or iqn (M-IQN)")
        if cfg.n_step < 1 or cfg.update_period_env_steps < 1 or cfg.gradient_steps < 0:
            raise D2RLError("algo.n_step and algo.update_period_env_steps must be >= 1, gradient_steps >= 0")
        if rcfg.kind not in ("none", "uniform", "prioritized"):
            raise D2RLError(f"dqn supports replay=uniform or replay=prioritized, got '{rcfg.kind}'")
        shape = obs_shape(observation_space)
        num_actions = int(action_space.n)
        encoder = network.build(network_cfg, shape)
        q = QNetwork(
            encoder if cfg.encoder_fc else without_final_fc(encoder),
            num_actions,
            cfg.distributional,
            cfg.dueling,
            cfg.noisy,
            cfg.head_hidden_size,
            cfg.num_atoms,
            cfg.v_min,
            cfg.v_max,
            cfg.num_cosines,
            cfg.num_quantiles,
            cfg.num_policy_quantiles,
        )
        facts = env_facts if env_facts is not None else EnvFacts()
        buffer = make_replay(rcfg, observation_space, action_space, num_envs, cfg.n_step, cfg.gamma, facts)
        agent = cls(
            q,
            cfg,
            buffer,
            num_actions,
            num_envs,
            total_env_steps,
            (rcfg.beta_initial, rcfg.beta_final),
            rcfg.save_in_checkpoint,
        )
        agent.plan(total_env_steps)
        return agent

    # -- acting -------------------------------------------------------------------------------
    def epsilon(self, env_step: int) -> float:
        cfg = self.cfg
        span = cfg.exploration_fraction * self.total_env_steps
        frac = min(1.0, env_step / span) if span > 0 else 1.0
        return cfg.epsilon_initial + frac * (cfg.epsilon_final - cfg.epsilon_initial)

    def applied_epsilon(self, env_step: int) -> float:
        """The epsilon ``_explore`` applies (noisy nets or not): 1 before ``learning_starts_env_steps``."""
        return 1.0 if env_step < self.cfg.learning_starts_env_steps else self.epsilon(env_step)

    def policy(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        was_training = self.q.training
        self.q.train(not deterministic)  # deterministic: noisy layers act with their mean weights
        q = self.q.q_values(obs)
        self.q.train(was_training)
        return q.argmax(-1)

    @torch.no_grad()
    def _explore(self, obs: np.ndarray, offset: int) -> np.ndarray:
        step = self.env_steps + offset
        n = obs.shape[0]
        eps = self.applied_epsilon(step)
        if step < self.cfg.learning_starts_env_steps:
            return self.rng.integers(0, self.num_actions, n)
        if self.cfg.noisy:
            reset_noise(self.q)
        action = self.q.q_values(torch.from_numpy(obs)).argmax(-1).numpy()
        if eps > 0:
            explore = self.rng.random(n) < eps
            action = np.where(explore, self.rng.integers(0, self.num_actions, n), action)
        return action

    def attach(self, envs: gym.vector.VectorEnv, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.buffer.rng = np.random.default_rng(seed + 1)
        self.buffer.cut_episodes()  # a resumed run restarts its envs from resets
        self.collector = TransitionCollector(envs, seed)
        self.tracker = self.collector.tracker

    def env_steps_per_iteration(self) -> int:
        return self.vector_steps * self.num_envs

    # -- learning -----------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        cfg = self.cfg
        main = [p for n, p in self.q.named_parameters() if not n.startswith("fractions.")]
        opt = torch.optim.Adam(main, lr=cfg.lr, eps=cfg.adam_eps, fused=True)
        if self.q.fractions is None:
            return opt
        return [
            opt,
            torch.optim.RMSprop(self.q.fractions.parameters(), lr=cfg.fraction_lr, alpha=0.95, eps=1e-5),
        ]

    def loss(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Per-sample loss ``[B]``, new priorities ``[B]`` and metrics for one batch."""
        cfg, q, qt = self.cfg, self.q, self.q_target
        obs, next_obs = batch["obs"], batch["next_obs"]
        action = batch["action"].long()
        reward, discount, terminated = batch["reward"], batch["discount"], batch["terminated"]
        B = action.shape[0]
        rows = torch.arange(B)
        kind = cfg.distributional
        metrics: dict[str, torch.Tensor] = {}
        if kind == "none":
            q_a = q.q_values(obs).gather(1, action.unsqueeze(1)).squeeze(1)
            with torch.no_grad():
                q_next = qt.q_values(next_obs)
                if cfg.munchausen:
                    target = L.munchausen_target(
                        q_next,
                        qt.q_values(obs),
                        action,
                        reward,
                        discount,
                        terminated,
                        cfg.munchausen_alpha,
                        cfg.munchausen_tau,
                        cfg.munchausen_clip,
                    )
                else:
                    greedy = (q.q_values(next_obs) if cfg.double else q_next).argmax(-1)
                    target = L.q_target(q_next[rows, greedy], reward, discount, terminated)
            per_sample = L.huber_td_loss(q_a, target)
            metrics["stats/q"] = q_a.detach().mean()
            return per_sample, (q_a.detach() - target).abs(), metrics
        if kind == "c51":
            log_p = torch.log_softmax(q.head(q.features(obs)), dim=-1)[rows, action]  # [B, K]
            with torch.no_grad():
                next_p = torch.softmax(qt.head(qt.features(next_obs)), dim=-1)  # [B, A, K]
                next_q = q.q_values(next_obs) if cfg.double else (next_p * qt.support).sum(-1)
                m = L.categorical_projection(
                    next_p[rows, next_q.argmax(-1)], reward, discount, terminated, qt.support
                )
            per_sample = L.categorical_loss(log_p, m)
            metrics["stats/q"] = (log_p.detach().exp() * q.support).sum(-1).mean()
            return per_sample, per_sample.detach(), metrics
        f = q.features(obs)
        if kind == "iqn":
            taus = torch.rand(B, cfg.num_quantiles)
        else:
            assert q.fractions is not None
            tau, tau_hat, entropy = q.fractions(f.detach())
            taus = tau_hat.detach()
        z = q.quantiles(f, taus)[rows, :, action]  # [B, N]
        with torch.no_grad():
            f_next = qt.features(next_obs)
            if kind == "iqn":
                z_next = qt.quantiles(f_next, torch.rand(B, cfg.num_target_quantiles))  # [B, N', A]
                next_q_t = qt.q_from_features(f_next)  # [B, A], from K fresh policy samples
            else:
                assert q.fractions is not None
                next_tau, next_hat, _ = q.fractions(f_next)
                z_next = qt.quantiles(f_next, next_hat)
                next_q_t = ((next_tau[:, 1:] - next_tau[:, :-1]).unsqueeze(-1) * z_next).sum(1)
            not_done = (discount * (1.0 - terminated)).unsqueeze(1)
            if cfg.munchausen:  # M-IQN: soft target over next actions
                log_pi = torch.log_softmax(next_q_t / cfg.munchausen_tau, dim=-1).unsqueeze(1)  # [B, 1, A]
                soft = (log_pi.exp() * (z_next - cfg.munchausen_tau * log_pi)).sum(-1)  # [B, N']
                bonus = L.munchausen_bonus(
                    qt.q_values(obs),
                    action,
                    reward,
                    cfg.munchausen_alpha,
                    cfg.munchausen_tau,
                    cfg.munchausen_clip,
                )
                target = bonus.unsqueeze(1) + not_done * soft
            else:
                greedy = (q.q_values(next_obs) if cfg.double else next_q_t).argmax(-1)
                target = reward.unsqueeze(1) + not_done * z_next[rows, :, greedy]
        per_sample = L.quantile_huber_loss(z, taus, target, cfg.kappa)
        metrics["stats/q"] = z.detach().mean()
        if kind == "fqf":
            with torch.no_grad():
                z_tau = q.quantiles(f, tau[:, 1:-1])[rows, :, action]  # [B, N-1]
            frac = L.fraction_loss(z_tau, z.detach(), tau) - cfg.fraction_entropy_coef * entropy
            metrics["loss/fraction"] = frac.detach().mean()
            self._fraction_loss = frac  # [B], weighted like the quantile loss in `update`
        return per_sample, per_sample.detach(), metrics

    def _sync_target(self) -> None:
        period = self.cfg.target_update_period_env_steps
        syncs = self.env_steps // period - int(self.last_target_sync) // period
        if syncs <= 0:
            return
        tau = 1.0 - (1.0 - self.cfg.target_tau) ** syncs
        with torch.no_grad():
            for p_t, p in zip(self.q_target.parameters(), self.q.parameters(), strict=True):
                p_t.lerp_(p, tau)
            for b_t, b in zip(self.q_target.buffers(), self.q.buffers(), strict=True):
                b_t.copy_(b)
        self.last_target_sync.fill_(self.env_steps)

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, float]:
        assert self.collector is not None, "call attach(envs, seed) first"
        cfg, buffer = self.cfg, self.buffer
        with self.timer(self, "collect"):
            steps = self.collector.collect(buffer, self.vector_steps, self._explore)
        self.env_steps += steps
        self.timings.update(self.collector.timings)
        out: dict[str, float] = {"train/epsilon": self.applied_epsilon(self.env_steps)}
        if self.env_steps < cfg.learning_starts_env_steps:
            self.iteration += 1
            return out
        self._sync_target()
        owed = float(self.updates_owed) + steps * cfg.gradient_steps / cfg.update_period_env_steps
        n = int(owed)
        self.updates_owed.fill_(owed - n)
        optimizers = self.optimizers()
        # raw torch optimizers: Lightning's wrappers cost ~0.1 ms per call in this hot loop
        opts = [o.optimizer for o in (optimizers if isinstance(optimizers, list) else [optimizers])]
        if cfg.anneal_lr:
            lr = cfg.lr * max(0.0, 1.0 - self.env_steps / max(1, self.total_env_steps))
            for group in opts[0].param_groups:
                group["lr"] = lr
            out["train/lr"] = lr
        per = buffer if isinstance(buffer, PrioritizedReplayBuffer) else None
        if per is not None:
            b0, b1 = self.beta_schedule
            per.beta = b0 + min(1.0, self.env_steps / max(1, self.total_env_steps)) * (b1 - b0)
        sums: dict[str, Any] = {}
        for _ in range(n):
            with self.timer(self, "sample"):
                data = buffer.sample(cfg.batch_size)
            with self.timer(self, "update"):
                priority, metrics = self.update(data, opts)
            if per is not None:
                with self.timer(self, "sample"):
                    per.update_priorities(data["indices"], priority)
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v
        self.gradient_steps_done += n
        self.iteration += 1
        out.update({k: float(v) / max(n, 1) for k, v in sums.items()})
        return out

    def update(
        self, data: dict[str, torch.Tensor], opts: list[torch.optim.Optimizer]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One gradient step on ``data`` (``opts``: main, then FQF's fraction optimizer); returns
        the new priorities ``[B]`` and the metrics."""
        cfg = self.cfg
        if cfg.noisy:
            reset_noise(self.q)
            reset_noise(self.q_target)
        per_sample, priority, metrics = self.loss(data)
        weights = data.get("weights")  # PER importance weights [B]
        loss = L.weighted_mean(per_sample, weights)
        opts[0].zero_grad()
        loss.backward()
        if cfg.max_grad_norm > 0:  # only what this step updates: not the fraction network
            params = [p for group in opts[0].param_groups for p in group["params"]]
            nn.utils.clip_grad_norm_(params, cfg.max_grad_norm, foreach=True)
        opts[0].step()
        if len(opts) > 1:
            opts[1].zero_grad()
            L.weighted_mean(self._fraction_loss, weights).backward()
            opts[1].step()
        metrics["loss/q"] = loss.detach()
        return priority, metrics

    # -- checkpointing: the replay buffer rides along in the agent's state dict ---------------
    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        state = super().state_dict(*args, **kwargs)
        if self.save_buffer and not args and not kwargs:
            state.update({f"replay/{k}": v for k, v in self.buffer.state_dict().items()})
        return state

    def load_state_dict(self, state_dict: Any, strict: bool = True, **kwargs: Any) -> Any:
        replay = {k[len("replay/") :]: v for k, v in state_dict.items() if k.startswith("replay/")}
        rest = {k: v for k, v in state_dict.items() if not k.startswith("replay/")}
        if replay:
            try:
                self.buffer.load_state_dict(replay)
            except (ValueError, KeyError) as e:  # e.g. evaluation or load_from with other num_envs
                log.warning("replay buffer not restored from the checkpoint: %s", e)
        return super().load_state_dict(rest, strict=strict, **kwargs)


SPEC = AlgorithmSpec(
    name="dqn",
    config_class=DQNConfig,
    agent_class=DQNAgent,
    action_spaces=("discrete",),
    description="DQN with switches: double, dueling, noisy, C51, IQN, FQF, n-step, PER, Munchausen",
)
