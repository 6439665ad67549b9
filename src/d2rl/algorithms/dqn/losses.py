"""Losses and targets of the DQN family, as pure functions of tensors (tested on tiny batches).

Every loss returns a per-sample loss ``[B]`` so prioritized replay can weight it, and the
targets take ``discount [B]`` (``gamma ** m`` for an m-step return) and ``terminated [B]``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def weighted_mean(per_sample: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """``mean(w * loss)`` with PER importance weights ``w [B]`` (Schaul et al. 2016), else the mean."""
    return per_sample.mean() if weights is None else (per_sample * weights).mean()


def huber_td_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DQN (Mnih et al. 2015): Huber loss (delta 1) of ``q [B]`` against a fixed ``target [B]``."""
    return F.smooth_l1_loss(q, target, reduction="none")


def q_target(
    next_q: torch.Tensor, reward: torch.Tensor, discount: torch.Tensor, terminated: torch.Tensor
) -> torch.Tensor:
    """``r + gamma^m (1 - terminated) next_q`` for ``next_q [B]`` (max or double-Q value)."""
    return reward + discount * (1.0 - terminated) * next_q


def munchausen_target(
    q_next: torch.Tensor,
    q_obs: torch.Tensor,
    action: torch.Tensor,
    reward: torch.Tensor,
    discount: torch.Tensor,
    terminated: torch.Tensor,
    alpha: float,
    entropy_tau: float,
    log_pi_clip: float,
) -> torch.Tensor:
    """Munchausen-DQN target (Vieillard et al. 2020, eq. 3 with the soft value of eq. 2).

    ``q_next [B, A]``, ``q_obs [B, A]``: target-network values at next_obs and obs. With
    ``pi = softmax(q / tau)``: ``r + alpha * clip(tau log pi(a|s), l0, 0)
    + gamma (1 - terminated) sum_a' pi(a'|s') (q(s', a') - tau log pi(a'|s'))``.
    """
    log_pi_next = torch.log_softmax(q_next / entropy_tau, dim=-1)
    soft_v = (log_pi_next.exp() * (q_next - entropy_tau * log_pi_next)).sum(-1)
    return (
        munchausen_bonus(q_obs, action, reward, alpha, entropy_tau, log_pi_clip)
        + discount * (1.0 - terminated) * soft_v
    )


def munchausen_bonus(
    q_obs: torch.Tensor,
    action: torch.Tensor,
    reward: torch.Tensor,
    alpha: float,
    entropy_tau: float,
    log_pi_clip: float,
) -> torch.Tensor:
    """``r + alpha * clip(tau log softmax(q/tau)[a], l0, 0)``, ``[B]``."""
    tau_log_pi = entropy_tau * torch.log_softmax(q_obs / entropy_tau, dim=-1)
    bonus = tau_log_pi.gather(1, action.long().unsqueeze(1)).squeeze(1).clamp(log_pi_clip, 0.0)
    return reward + alpha * bonus


def categorical_projection(
    next_probs: torch.Tensor,
    reward: torch.Tensor,
    discount: torch.Tensor,
    terminated: torch.Tensor,
    support: torch.Tensor,
) -> torch.Tensor:
    """C51 target (Bellemare et al. 2017, Algorithm 1): project ``r + gamma^m z`` onto ``support``.

    ``next_probs [B, K]`` of the greedy next action; ``support [K]`` evenly spaced. Returns ``[B, K]``.
    """
    K = support.shape[0]
    v_min, v_max = float(support[0]), float(support[-1])
    delta_z = (v_max - v_min) / (K - 1)
    tz = reward[:, None] + (discount * (1.0 - terminated))[:, None] * support[None, :]  # [B, K]
    b = (tz.clamp(v_min, v_max) - v_min) / delta_z
    lower, upper = b.floor().long(), b.ceil().long()
    # where b is an integer, lower == upper: give all the mass to that atom
    lower_w = torch.where(lower == upper, torch.ones_like(b), upper.float() - b)
    upper_w = b - lower.float()
    target = torch.zeros_like(next_probs)
    target.scatter_add_(1, lower, next_probs * lower_w)
    target.scatter_add_(1, upper, next_probs * upper_w)
    return target


def categorical_loss(log_probs: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy ``-sum_k m_k log p_k`` of the chosen action's ``log_probs [B, K]``; ``[B]``."""
    return -(target_probs * log_probs).sum(-1)


def quantile_huber_loss(
    quantiles: torch.Tensor, taus: torch.Tensor, target: torch.Tensor, kappa: float = 1.0
) -> torch.Tensor:
    """Quantile Huber loss (Dabney et al. 2018 IQN, eq. 3 with eq. 10 of QR-DQN).

    ``quantiles [B, T]`` at fractions ``taus [B, T]``, ``target [B, T']`` (fixed). Per sample:
    ``sum_i mean_j |tau_i - 1{u_ij < 0}| L_kappa(u_ij) / kappa`` with ``u_ij = target_j - quantile_i``.
    """
    u = target[:, None, :] - quantiles[:, :, None]  # [B, T, T']
    abs_u = u.abs()
    huber = torch.where(abs_u <= kappa, 0.5 * u.square(), kappa * (abs_u - 0.5 * kappa))
    weight = (taus[:, :, None] - (u.detach() < 0).float()).abs()
    return (weight * huber / kappa).mean(2).sum(1)


def fraction_loss(
    quantiles_at_taus: torch.Tensor, quantiles_at_hats: torch.Tensor, taus: torch.Tensor
) -> torch.Tensor:
    """FQF fraction loss (Yang et al. 2019, Proposition 1), ``[B]``.

    ``taus [B, N+1]`` (with grad), ``quantiles_at_taus [B, N-1]`` at the inner fractions
    ``tau_1..tau_{N-1}`` and ``quantiles_at_hats [B, N]`` at the midpoints, both without grad.
    ``dW1/dtau_i = 2 F^-1(tau_i) - F^-1(tau_hat_i) - F^-1(tau_hat_{i-1})``; the loss is
    ``sum_i dW1/dtau_i * tau_i`` so its gradient w.r.t. the fractions is exactly that.
    """
    grad = 2 * quantiles_at_taus - quantiles_at_hats[:, :-1] - quantiles_at_hats[:, 1:]  # [B, N-1]
    return (grad.detach() * taus[:, 1:-1]).sum(-1)


def value_rescale(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x`` (Pohlen et al. 2018, "Observe and Look Further",
    the transformed Bellman operator; R2D2 uses it with eps = 1e-3)."""
    return torch.sign(x) * (torch.sqrt(x.abs() + 1.0) - 1.0) + eps * x


def inverse_value_rescale(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """The exact inverse of ``value_rescale``:
    ``h^-1(x) = sign(x) (((sqrt(1 + 4 eps (|x| + 1 + eps)) - 1) / (2 eps))^2 - 1)`` (Pohlen et al. 2018,
    Proposition A.2); ``eps = 0`` gives ``sign(x) ((|x| + 1)^2 - 1)``."""
    if eps == 0.0:
        return torch.sign(x) * ((x.abs() + 1.0).square() - 1.0)
    # (sqrt(1 + a) - 1) / (2 eps) with a = 4 eps (|x| + 1 + eps), written without the cancellation
    u = x.abs() + 1.0 + eps
    root = 2.0 * u / (torch.sqrt(1.0 + 4.0 * eps * u) + 1.0)
    return torch.sign(x) * (root.square() - 1.0)


def rescaled_q_target(
    next_q: torch.Tensor,
    reward: torch.Tensor,
    discount: torch.Tensor,
    terminated: torch.Tensor,
    eps: float = 1e-3,
) -> torch.Tensor:
    """``h(r + gamma^m (1 - terminated) h^-1(next_q))``: the n-step target of Q-values learnt in
    the rescaled space (``next_q [B]`` is a rescaled value, as the network outputs it)."""
    return value_rescale(q_target(inverse_value_rescale(next_q, eps), reward, discount, terminated), eps)
