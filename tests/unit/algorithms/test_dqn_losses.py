"""DQN-family losses on tiny batches with answers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from d2rl.algorithms.dqn import losses as L
from d2rl.modules.q_heads import FractionProposal, NoisyLinear, QHead, without_final_fc


def test_q_target_and_huber() -> None:
    target = L.q_target(
        torch.tensor([2.0, 2.0]),
        torch.tensor([1.0, 1.0]),
        torch.tensor([0.5, 0.25]),
        torch.tensor([0.0, 1.0]),
    )
    assert target.tolist() == [2.0, 1.0]
    # |d| <= 1: d^2 / 2; |d| > 1: |d| - 1/2
    assert L.huber_td_loss(torch.tensor([2.5, 4.0]), torch.tensor([2.0, 1.0])).tolist() == [0.125, 2.5]


def test_categorical_projection_by_hand() -> None:
    support = torch.tensor([-1.0, 0.0, 1.0])
    next_probs = torch.tensor([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5], [0.2, 0.3, 0.5]])
    reward = torch.tensor([0.5, 0.0, 2.0])
    discount = torch.tensor([0.5, 0.5, 0.5])
    terminated = torch.tensor([0.0, 1.0, 0.0])
    m = L.categorical_projection(next_probs, reward, discount, terminated, support)
    # row 0: atoms move to 0.5 + 0.5 z = {0, 0.5, 1}: 0.2 -> atom 0; 0.3 splits 0.15/0.15 on 0 and 1; 0.5 -> 1
    # row 1: terminal, all mass on r = 0
    # row 2: 2 + 0.5 z >= 1.5: clipped to v_max
    expected = torch.tensor([[0.0, 0.35, 0.65], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(m, expected)
    loss = L.categorical_loss(torch.log(torch.tensor([[0.25, 0.25, 0.5]])), expected[:1])
    assert loss.item() == pytest.approx(-(0.35 * math.log(0.25) + 0.65 * math.log(0.5)))


def test_quantile_huber_loss_by_hand() -> None:
    # one quantile at tau = 0.25 predicting 0, targets {1, -3} (kappa 1):
    # u = 1: weight |0.25 - 0| = 0.25, huber 0.5 -> 0.125;  u = -3: weight 0.75, huber 2.5 -> 1.875
    loss = L.quantile_huber_loss(torch.tensor([[0.0]]), torch.tensor([[0.25]]), torch.tensor([[1.0, -3.0]]))
    assert loss.item() == pytest.approx((0.125 + 1.875) / 2)
    # two quantiles: sum over i (predictions), mean over j (targets)
    loss2 = L.quantile_huber_loss(
        torch.tensor([[0.0, 0.0]]), torch.tensor([[0.25, 0.25]]), torch.tensor([[1.0, -3.0]])
    )
    assert loss2.item() == pytest.approx(2 * loss.item())


def test_quantile_regression_finds_the_quantile() -> None:
    """Minimising the loss over samples of U{0..9} puts theta at 2: P(X <= 1) < 0.25 < P(X <= 2)."""
    theta = torch.zeros(1, 1, requires_grad=True)
    samples = torch.arange(10.0).unsqueeze(0)
    opt = torch.optim.SGD([theta], lr=0.05)
    for _ in range(2000):
        opt.zero_grad()
        L.quantile_huber_loss(theta, torch.tensor([[0.25]]), samples, kappa=0.01).sum().backward()
        opt.step()
    assert theta.item() == pytest.approx(2.0, abs=0.05)


def test_munchausen_target_by_hand() -> None:
    tau, alpha = 1.0, 0.5
    q = torch.tensor([[0.0, 0.0]])  # pi = (1/2, 1/2), tau log pi = -log 2
    out = L.munchausen_target(
        q,
        q,
        torch.tensor([1]),
        torch.tensor([1.0]),
        torch.tensor([0.9]),
        torch.tensor([0.0]),
        alpha,
        tau,
        -1.0,
    )
    # soft value: sum pi (q - tau log pi) = log 2; bonus: alpha * clip(-log 2, -1, 0)
    assert out.item() == pytest.approx(1.0 - 0.5 * math.log(2) + 0.9 * math.log(2))
    # clipping at l0 and terminal masking
    q_obs = torch.tensor([[0.0, -10.0]])
    out = L.munchausen_target(
        q,
        q_obs,
        torch.tensor([1]),
        torch.tensor([1.0]),
        torch.tensor([0.9]),
        torch.tensor([1.0]),
        alpha,
        tau,
        -1.0,
    )
    assert out.item() == pytest.approx(1.0 - 0.5)


def test_fraction_loss_gradient_is_w1_derivative() -> None:
    # N = 2 fractions: tau = (0, t, 1); dW1/dt = 2 F^-1(t) - F^-1(hat_0) - F^-1(hat_1)
    taus = torch.tensor([[0.0, 0.3, 1.0]], requires_grad=True)
    q_tau = torch.tensor([[1.0]])
    q_hat = torch.tensor([[0.0, 3.0]])
    L.fraction_loss(q_tau, q_hat, taus).sum().backward()
    assert taus.grad is not None
    assert taus.grad.tolist() == [[0.0, 2 * 1.0 - 0.0 - 3.0, 0.0]]


def test_heads_shapes_and_dueling_identity() -> None:
    head = QHead(8, 3, atoms=5, dueling=True)
    out = head(torch.randn(4, 8))
    assert out.shape == (4, 3, 5)
    # dueling: the mean over actions of the output is the value stream
    value = head.value(torch.ones(1, 8)).view(1, 1, 5)  # type: ignore[misc]
    torch.testing.assert_close(head(torch.ones(1, 8)).mean(1, keepdim=True), value)
    tau, hat, entropy = FractionProposal(8, 4)(torch.randn(2, 8))
    assert tau.shape == (2, 5) and hat.shape == (2, 4) and entropy.shape == (2,)
    assert (tau[:, 0] == 0).all() and (tau[:, -1] == 1).all() and (tau.diff(dim=1) > 0).all()


def test_noisy_linear_noise_on_in_train_off_in_eval() -> None:
    layer = NoisyLinear(4, 3)
    x = torch.randn(2, 4)
    a = layer(x)
    layer.reset_noise()
    assert not torch.allclose(a, layer(x))
    layer.eval()
    torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight_mu, layer.bias_mu))


def test_weighted_mean_by_hand() -> None:
    loss = torch.tensor([1.0, 3.0])
    assert L.weighted_mean(loss, None).item() == 2.0
    assert L.weighted_mean(loss, torch.tensor([0.5, 0.0])).item() == 0.25  # (0.5 * 1 + 0 * 3) / 2


def test_without_final_fc_leaves_the_conv_trunk() -> None:
    from d2rl.modules.cnn import NatureCNN

    net = NatureCNN((4, 36, 36))  # convs: 36 -> 8 -> 3 -> 1, so 64 trunk features
    x = torch.randint(0, 256, (2, 4, 36, 36), dtype=torch.uint8)
    trunk = net.convs(x.float() / 255).flatten(1)
    assert without_final_fc(net) is net and net.out_dim == 64
    torch.testing.assert_close(net(x), trunk)
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 4))
    assert without_final_fc(mlp) is mlp and isinstance(mlp[0], torch.nn.Linear)  # no `fc`: as is
