"""The value distributions of the DQN family, one class each, chosen by ``algo.distributional``.

Each class is a Q-network: the encoder plus the head its distribution needs, ``q_values(obs)``
(``[B, A]``, the distribution's mean: what the policy maximises) and ``loss(batch, target)``
against the target network (a frozen copy of itself, owned by the learner). Double Q-learning
(``double``) and Munchausen RL (``munchausen``) are options they honour.

| ``distributional`` | class | paper |
|---|---|---|
| ``none`` | ``ScalarQ`` | DQN (Mnih et al. 2015), double (van Hasselt et al. 2016), M-DQN, value rescaling |
| ``c51`` | ``CategoricalQ`` | C51 (Bellemare et al. 2017, Algorithm 1) |
| ``iqn`` | ``ImplicitQuantileQ`` | IQN (Dabney et al. 2018, Algorithm 1), M-IQN (Vieillard et al. 2020) |
| ``fqf`` | ``FractionQuantileQ`` | FQF (Yang et al. 2019) |

Batches hold ``obs, action, reward, next_obs, terminated, discount`` (``gamma ** m`` of an m-step
return) as the replay gives them; the pure losses are in ``losses``.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch import nn

from d2rl.algorithms.dqn import DQNConfig
from d2rl.algorithms.dqn import losses as L
from d2rl.errors import D2RLError
from d2rl.modules.q_heads import CosineEmbedding, FractionProposal, QHead

Batch = dict[str, torch.Tensor]


class ValueLoss(NamedTuple):
    """What a value distribution's ``loss`` returns for one batch."""

    per_sample: torch.Tensor  # [B], weighted by PER importance weights by the learner
    priorities: torch.Tensor  # [B] detached: |TD error| (scalar) or the per-sample loss (Rainbow)
    metrics: dict[str, torch.Tensor]
    fraction: torch.Tensor | None = None  # FQF: per-sample fraction loss [B], for its own optimizer


class QNetwork(nn.Module):
    """What the value distributions share: the encoder and a ``QHead`` with ``atoms`` outputs per action."""

    munchausen_form: ClassVar[bool] = True  # it has a Munchausen form (M-DQN, M-IQN)

    def __init__(self, encoder: nn.Module, num_actions: int, cfg: DQNConfig, atoms: int = 1) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        self.feature_dim = int(encoder.out_dim)  # type: ignore[arg-type]
        self.head = QHead(self.feature_dim, num_actions, atoms, cfg.dueling, cfg.noisy, cfg.head_hidden_size)
        self.fractions: FractionProposal | None = None  # FQF's proposal network (its own optimizer)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        return self.encoder(obs.float())  # type: ignore[no-any-return]

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, *obs]`` -> ``[B, A]``."""
        return self.q_from_features(self.features(obs))

    def q_from_features(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, batch: Batch, target: QNetwork) -> ValueLoss:
        raise NotImplementedError


class ScalarQ(QNetwork):
    """One value per action, Huber TD loss; double Q picks the next action by the online network;
    Munchausen adds ``alpha tau log pi(a|s)`` to the reward and bootstraps the soft value."""

    def q_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features).squeeze(-1)  # type: ignore[no-any-return]

    def loss(self, batch: Batch, target: QNetwork) -> ValueLoss:
        cfg = self.cfg
        obs, next_obs, action = batch["obs"], batch["next_obs"], batch["action"].long()
        reward, discount, terminated = batch["reward"], batch["discount"], batch["terminated"]
        q_a = self.q_values(obs).gather(1, action.unsqueeze(1)).squeeze(1)  # [B]
        with torch.no_grad():
            q_next = target.q_values(next_obs)  # [B, A]
            if cfg.munchausen:
                q_obs = target.q_values(obs)
                if cfg.value_rescaling:  # the soft target of the unscaled values, rescaled again
                    q_next = L.inverse_value_rescale(q_next, cfg.value_rescaling_eps)
                    q_obs = L.inverse_value_rescale(q_obs, cfg.value_rescaling_eps)
                y = L.munchausen_target(
                    q_next,
                    q_obs,
                    action,
                    reward,
                    discount,
                    terminated,
                    cfg.munchausen_alpha,
                    cfg.munchausen_tau,
                    cfg.munchausen_clip,
                )
                if cfg.value_rescaling:
                    y = L.value_rescale(y, cfg.value_rescaling_eps)
            else:
                greedy = (self.q_values(next_obs) if cfg.double else q_next).argmax(-1, keepdim=True)
                next_v = q_next.gather(1, greedy).squeeze(1)
                if cfg.value_rescaling:  # Pohlen et al. 2018: h(r + gamma^m h^-1(q'))
                    y = L.rescaled_q_target(next_v, reward, discount, terminated, cfg.value_rescaling_eps)
                else:
                    y = L.q_target(next_v, reward, discount, terminated)
        q_a_detached = q_a.detach()
        return ValueLoss(L.huber_td_loss(q_a, y), (q_a_detached - y).abs(), {"stats/q": q_a_detached.mean()})


class CategoricalQ(QNetwork):
    """``num_atoms`` probabilities per action on a fixed support ``[v_min, v_max]``; cross-entropy
    against the projected target distribution of the greedy next action."""

    munchausen_form = False
    support: torch.Tensor

    def __init__(self, encoder: nn.Module, num_actions: int, cfg: DQNConfig) -> None:
        super().__init__(encoder, num_actions, cfg, atoms=cfg.num_atoms)
        self.register_buffer("support", torch.linspace(cfg.v_min, cfg.v_max, cfg.num_atoms))

    def q_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return (torch.softmax(self.head(features), dim=-1) * self.support).sum(-1)

    def loss(self, batch: Batch, target: QNetwork) -> ValueLoss:
        assert isinstance(target, CategoricalQ)
        action = batch["action"].long()
        rows = torch.arange(action.shape[0])
        log_p = torch.log_softmax(self.head(self.features(batch["obs"])), dim=-1)[rows, action]  # [B, K]
        with torch.no_grad():
            next_p = torch.softmax(target.head(target.features(batch["next_obs"])), dim=-1)  # [B, A, K]
            next_q = (
                self.q_values(batch["next_obs"]) if self.cfg.double else (next_p * target.support).sum(-1)
            )
            m = L.categorical_projection(
                next_p[rows, next_q.argmax(-1)],
                batch["reward"],
                batch["discount"],
                batch["terminated"],
                target.support,
            )  # [B, K]
        per_sample = L.categorical_loss(log_p, m)
        q = (log_p.detach().exp() * self.support).sum(-1).mean()
        return ValueLoss(per_sample, per_sample.detach(), {"stats/q": q})


def _quantiles(
    net: ImplicitQuantileQ | FractionQuantileQ, features: torch.Tensor, taus: torch.Tensor
) -> torch.Tensor:
    """Features ``[B, F]``, fractions ``[B, T]`` -> quantile values ``[B, T, A]`` (IQN eq. 4)."""
    return net.head(features.unsqueeze(1) * net.embedding(taus)).squeeze(-1)  # type: ignore[no-any-return]


def quantile_target(
    online: QNetwork, target: QNetwork, batch: Batch, z_next: torch.Tensor, next_q: torch.Tensor
) -> torch.Tensor:
    """Target quantiles ``[B, N']`` from the target network's ``z_next [B, N', A]`` and its mean
    ``next_q [B, A]``: ``r + gamma^m (1 - d) Z'(s', a*)`` with ``a*`` greedy (by the online network
    with ``double``), or M-IQN's soft target ``r + alpha clip(tau log pi(a|s)) + gamma^m (1 - d)
    sum_a' pi(a'|s') (Z'(s', a') - tau log pi(a'|s'))`` with ``pi = softmax(next_q / tau)``."""
    cfg = online.cfg
    action, reward = batch["action"].long(), batch["reward"]
    not_done = (batch["discount"] * (1.0 - batch["terminated"])).unsqueeze(1)  # [B, 1]
    if cfg.munchausen:
        log_pi = torch.log_softmax(next_q / cfg.munchausen_tau, dim=-1).unsqueeze(1)  # [B, 1, A]
        soft = (log_pi.exp() * (z_next - cfg.munchausen_tau * log_pi)).sum(-1)  # [B, N']
        bonus = L.munchausen_bonus(
            target.q_values(batch["obs"]),
            action,
            reward,
            cfg.munchausen_alpha,
            cfg.munchausen_tau,
            cfg.munchausen_clip,
        )
        return bonus.unsqueeze(1) + not_done * soft
    greedy = (online.q_values(batch["next_obs"]) if cfg.double else next_q).argmax(-1)  # [B]
    return reward.unsqueeze(1) + not_done * z_next[torch.arange(action.shape[0]), :, greedy]


class ImplicitQuantileQ(QNetwork):
    """Quantile values at sampled fractions ``tau ~ U(0, 1)`` through a cosine embedding; quantile
    Huber loss of N online against N' target samples; the greedy next action from K other samples."""

    def __init__(self, encoder: nn.Module, num_actions: int, cfg: DQNConfig) -> None:
        super().__init__(encoder, num_actions, cfg)
        self.embedding = CosineEmbedding(self.feature_dim, cfg.num_cosines)

    def quantiles(self, features: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
        return _quantiles(self, features, taus)

    def q_from_features(self, features: torch.Tensor) -> torch.Tensor:
        taus = torch.rand(features.shape[0], self.cfg.num_policy_quantiles)  # K policy samples
        return self.quantiles(features, taus).mean(1)

    def loss(self, batch: Batch, target: QNetwork) -> ValueLoss:
        assert isinstance(target, ImplicitQuantileQ)
        cfg, action = self.cfg, batch["action"].long()
        B = action.shape[0]
        taus = torch.rand(B, cfg.num_quantiles)  # N
        z = self.quantiles(self.features(batch["obs"]), taus)[torch.arange(B), :, action]  # [B, N]
        with torch.no_grad():
            f_next = target.features(batch["next_obs"])
            z_next = target.quantiles(f_next, torch.rand(B, cfg.num_target_quantiles))  # [B, N', A]
            next_q = target.q_from_features(f_next)  # [B, A], from K fresh samples
            y = quantile_target(self, target, batch, z_next, next_q)
        per_sample = L.quantile_huber_loss(z, taus, y, cfg.kappa)
        return ValueLoss(per_sample, per_sample.detach(), {"stats/q": z.detach().mean()})


class FractionQuantileQ(QNetwork):
    """IQN's quantile values at fractions proposed per state (on detached features); the proposal
    network minimises the 1-Wasserstein error of the staircase (``fraction`` of ``ValueLoss``)."""

    munchausen_form = False

    def __init__(self, encoder: nn.Module, num_actions: int, cfg: DQNConfig) -> None:
        super().__init__(encoder, num_actions, cfg)
        self.embedding = CosineEmbedding(self.feature_dim, cfg.num_cosines)
        self.fractions = FractionProposal(self.feature_dim, cfg.num_quantiles)

    def quantiles(self, features: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
        return _quantiles(self, features, taus)

    def proposal(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``tau [B, N+1]``, ``tau_hat [B, N]``, entropy ``[B]`` of the fractions for ``features``."""
        assert self.fractions is not None
        return self.fractions(features.detach())  # type: ignore[no-any-return]

    def q_from_features(self, features: torch.Tensor) -> torch.Tensor:
        tau, tau_hat, _ = self.proposal(features)
        return ((tau[:, 1:] - tau[:, :-1]).unsqueeze(-1) * self.quantiles(features, tau_hat)).sum(1)

    def loss(self, batch: Batch, target: QNetwork) -> ValueLoss:
        assert isinstance(target, FractionQuantileQ)
        cfg, action = self.cfg, batch["action"].long()
        rows = torch.arange(action.shape[0])
        f = self.features(batch["obs"])
        tau, tau_hat, entropy = self.proposal(f)  # [B, N+1], [B, N], [B]
        taus = tau_hat.detach()
        z = self.quantiles(f, taus)[rows, :, action]  # [B, N]
        with torch.no_grad():
            f_next = target.features(batch["next_obs"])
            next_tau, next_hat, _ = self.proposal(f_next)  # the online proposal on target features
            z_next = target.quantiles(f_next, next_hat)  # [B, N, A]
            next_q = ((next_tau[:, 1:] - next_tau[:, :-1]).unsqueeze(-1) * z_next).sum(1)  # [B, A]
            y = quantile_target(self, target, batch, z_next, next_q)
            z_tau = self.quantiles(f, tau[:, 1:-1])[rows, :, action]  # [B, N-1] at the inner fractions
        per_sample = L.quantile_huber_loss(z, taus, y, cfg.kappa)
        fraction = L.fraction_loss(z_tau, z.detach(), tau) - cfg.fraction_entropy_coef * entropy
        metrics = {"stats/q": z.detach().mean(), "loss/fraction": fraction.detach().mean()}
        return ValueLoss(per_sample, per_sample.detach(), metrics, fraction)


VALUE_DISTRIBUTIONS: dict[str, type[QNetwork]] = {
    "none": ScalarQ,
    "c51": CategoricalQ,
    "iqn": ImplicitQuantileQ,
    "fqf": FractionQuantileQ,
}


def make_q_network(encoder: nn.Module, num_actions: int, cfg: DQNConfig) -> QNetwork:
    """The Q-network of ``cfg.distributional`` (looked up in ``VALUE_DISTRIBUTIONS``) on ``encoder``."""
    kind = VALUE_DISTRIBUTIONS.get(cfg.distributional)
    if kind is None:
        raise D2RLError(
            f"algo.distributional must be one of {', '.join(VALUE_DISTRIBUTIONS)}, got '{cfg.distributional}'"
        )
    if cfg.value_rescaling and kind is not ScalarQ:
        raise D2RLError(
            f"algo.value_rescaling works with distributional=none (a scalar target), got '{cfg.distributional}'"
        )
    if cfg.munchausen and not kind.munchausen_form:
        ok = " or ".join(name for name, k in VALUE_DISTRIBUTIONS.items() if k.munchausen_form)
        raise D2RLError(
            f"algo.munchausen works with distributional={ok} (M-DQN, M-IQN), got '{cfg.distributional}'"
        )
    return kind(encoder, num_actions, cfg)
