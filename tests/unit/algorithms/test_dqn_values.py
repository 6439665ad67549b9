"""The DQN family's value distributions: shapes of ``q_values`` and ``loss`` on a tiny batch, what
each computes (checked against the pure losses), and selection by the ``VALUE_DISTRIBUTIONS`` dict."""

from __future__ import annotations

import copy

import pytest
import torch

from d2rl.algorithms.dqn import DQNConfig
from d2rl.algorithms.dqn import losses as L
from d2rl.algorithms.dqn.values import (
    VALUE_DISTRIBUTIONS,
    CategoricalQ,
    FractionQuantileQ,
    ImplicitQuantileQ,
    QNetwork,
    ScalarQ,
    make_q_network,
)
from d2rl.errors import D2RLError
from d2rl.modules.mlp import MLP

B, OBS, A = 5, 4, 3
SMALL = dict(num_atoms=7, v_min=-2.0, v_max=2.0, num_quantiles=4, num_target_quantiles=6,
             num_policy_quantiles=9, num_cosines=8)  # fmt: skip


def _nets(distributional: str, **options: object) -> tuple[QNetwork, QNetwork]:
    """An online network on a 16-unit MLP and a target that differs from it (perturbed copy)."""
    torch.manual_seed(0)
    cfg = DQNConfig(distributional=distributional, **{**SMALL, **options})  # type: ignore[arg-type]
    q = make_q_network(MLP(OBS, [16], "relu"), A, cfg)
    target = copy.deepcopy(q).requires_grad_(False)
    with torch.no_grad():
        for p in target.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return q, target


def _batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "obs": torch.randn(B, OBS, generator=g),
        "action": torch.tensor([0, 1, 2, 1, 0]),
        "reward": torch.tensor([1.0, 0.0, -1.0, 0.5, 2.0]),
        "next_obs": torch.randn(B, OBS, generator=g),
        "terminated": torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0]),
        "discount": torch.full((B,), 0.9),
    }


def _check_shapes(q: QNetwork, target: QNetwork) -> None:
    assert q.q_values(_batch()["obs"]).shape == (B, A)
    out = q.loss(_batch(), target)
    assert out.per_sample.shape == (B,) and out.priorities.shape == (B,)
    assert not out.priorities.requires_grad and torch.isfinite(out.per_sample).all()
    assert out.metrics["stats/q"].shape == ()
    out.per_sample.mean().backward()
    assert all(p.grad is not None for p in q.encoder.parameters())  # the loss trains the encoder
    assert all(p.grad is None for p in target.parameters())


def test_scalar_q_is_the_huber_td_loss_with_greedy_or_double_targets() -> None:
    q, target = _nets("none")
    assert isinstance(q, ScalarQ)
    _check_shapes(q, target)
    b = _batch()
    q_a = q.q_values(b["obs"])[torch.arange(B), b["action"]]
    with torch.no_grad():
        q_next = target.q_values(b["next_obs"])
    y = L.q_target(q_next.max(-1).values, b["reward"], b["discount"], b["terminated"])
    out = q.loss(b, target)
    torch.testing.assert_close(out.per_sample, L.huber_td_loss(q_a, y))
    torch.testing.assert_close(out.priorities, (q_a - y).abs().detach())
    # double: the online network picks a*, the target network values it
    q.cfg.double = True
    a_star = q.q_values(b["next_obs"]).argmax(-1)
    y2 = L.q_target(q_next[torch.arange(B), a_star], b["reward"], b["discount"], b["terminated"])
    assert not torch.equal(a_star, q_next.argmax(-1))  # the two targets differ on this batch
    torch.testing.assert_close(q.loss(b, target).per_sample, L.huber_td_loss(q_a, y2))


def test_scalar_q_munchausen_target() -> None:
    q, target = _nets("none", munchausen=True, munchausen_tau=0.5)
    _check_shapes(q, target)
    b = _batch()
    with torch.no_grad():
        y = L.munchausen_target(target.q_values(b["next_obs"]), target.q_values(b["obs"]), b["action"],
                                b["reward"], b["discount"], b["terminated"], 0.9, 0.5, -1.0)  # fmt: skip
    q_a = q.q_values(b["obs"])[torch.arange(B), b["action"]]
    torch.testing.assert_close(q.loss(b, target).per_sample, L.huber_td_loss(q_a, y))


def test_categorical_q_is_the_mean_of_its_atoms_and_cross_entropy_to_the_projection() -> None:
    q, target = _nets("c51", dueling=True)
    assert isinstance(q, CategoricalQ) and isinstance(target, CategoricalQ)
    _check_shapes(q, target)
    b = _batch()
    p = torch.softmax(q.head(q.features(b["obs"])), -1)  # [B, A, K]
    assert p.shape == (B, A, 7)
    torch.testing.assert_close(q.q_values(b["obs"]), (p * torch.linspace(-2, 2, 7)).sum(-1))
    with torch.no_grad():
        next_p = torch.softmax(target.head(target.features(b["next_obs"])), -1)
        greedy = (next_p * target.support).sum(-1).argmax(-1)
        m = L.categorical_projection(next_p[torch.arange(B), greedy], b["reward"], b["discount"],
                                     b["terminated"], target.support)  # fmt: skip
    out = q.loss(b, target)
    torch.testing.assert_close(out.per_sample, L.categorical_loss(p[torch.arange(B), b["action"]].log(), m))
    torch.testing.assert_close(out.priorities, out.per_sample.detach())  # Rainbow: the loss


def test_implicit_quantile_q_samples_n_target_n_prime_and_k_policy_fractions(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    q, target = _nets("iqn")
    assert isinstance(q, ImplicitQuantileQ) and isinstance(target, ImplicitQuantileQ)
    _check_shapes(q, target)
    shapes: list[tuple[int, ...]] = []
    rand = torch.rand
    monkeypatch.setattr(torch, "rand", lambda *shape: shapes.append(shape) or rand(*shape))
    q.loss(_batch(), target)
    assert shapes == [(B, 4), (B, 6), (B, 9)]  # N online, N' target, K for the greedy next action
    shapes.clear()
    assert q.q_values(_batch()["obs"]).shape == (B, A) and shapes == [(B, 9)]
    assert q.quantiles(q.features(_batch()["obs"]), torch.rand(B, 2)).shape == (B, 2, A)


def test_implicit_quantile_q_munchausen_target_is_finite() -> None:
    q, target = _nets("iqn", munchausen=True)
    _check_shapes(q, target)


def test_fraction_quantile_q_returns_its_fraction_loss_apart_from_the_quantile_loss() -> None:
    q, target = _nets("fqf")
    assert isinstance(q, FractionQuantileQ) and q.fractions is not None
    _check_shapes(q, target)
    q.zero_grad()
    out = q.loss(_batch(), target)
    assert out.fraction is not None and out.fraction.shape == (B,)
    assert out.metrics["loss/fraction"].shape == ()
    out.per_sample.mean().backward()  # the quantile loss leaves the fraction network alone ...
    assert all(p.grad is None for p in q.fractions.parameters())
    out.fraction.mean().backward()  # ... which only the fraction loss trains
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in q.fractions.parameters())
    # q_values: the staircase of quantiles at the midpoints, weighted by the fraction widths
    f = q.features(_batch()["obs"])
    tau, tau_hat, _ = q.fractions(f)
    expected = ((tau[:, 1:] - tau[:, :-1]).unsqueeze(-1) * q.quantiles(f, tau_hat)).sum(1)
    torch.testing.assert_close(q.q_values(_batch()["obs"]), expected)


@pytest.mark.parametrize("kind", ["none", "c51", "iqn"])
def test_other_distributions_have_no_fraction_loss(kind: str) -> None:
    q, target = _nets(kind)
    assert q.loss(_batch(), target).fraction is None and q.fractions is None


def test_selection_is_by_the_value_distributions_dict(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    expected = {"none": ScalarQ, "c51": CategoricalQ, "iqn": ImplicitQuantileQ, "fqf": FractionQuantileQ}
    assert expected == VALUE_DISTRIBUTIONS
    for kind, cls in VALUE_DISTRIBUTIONS.items():
        assert type(make_q_network(MLP(OBS, [8]), A, DQNConfig(distributional=kind, **SMALL))) is cls  # type: ignore[arg-type]

    class Quartic(ScalarQ):
        munchausen_form = False

    monkeypatch.setitem(VALUE_DISTRIBUTIONS, "quartic", Quartic)  # a new entry is all it takes
    assert type(make_q_network(MLP(OBS, [8]), A, DQNConfig(distributional="quartic"))) is Quartic
    with pytest.raises(D2RLError, match="munchausen works with distributional=none or iqn .*'quartic'"):
        make_q_network(MLP(OBS, [8]), A, DQNConfig(distributional="quartic", munchausen=True))
    with pytest.raises(D2RLError, match="must be one of none, c51, iqn, fqf, quartic, got 'qr'"):
        make_q_network(MLP(OBS, [8]), A, DQNConfig(distributional="qr"))
