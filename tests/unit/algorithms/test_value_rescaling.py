"""Value rescaling (Pohlen et al. 2018): h, its exact inverse, the rescaled n-step target, DQN's switch."""

from __future__ import annotations

import math

import pytest
import torch

from d2rl.algorithms.dqn import DQNConfig
from d2rl.algorithms.dqn import losses as L
from d2rl.algorithms.dqn.values import make_q_network
from d2rl.errors import D2RLError


def wide_range(dtype: torch.dtype) -> torch.Tensor:
    mags = torch.logspace(-6, 6, 2001, dtype=dtype)
    return torch.cat([-mags.flip(0), torch.zeros(1, dtype=dtype), mags])


@pytest.mark.parametrize("eps", [1e-3, 1e-2, 0.0])
def test_inverse_undoes_h_over_a_wide_range(eps: float) -> None:
    x = wide_range(torch.float64)
    back = L.inverse_value_rescale(L.value_rescale(x, eps), eps)
    assert ((back - x).abs() / x.abs().clamp(min=1.0)).max() < 1e-5
    y = wide_range(torch.float64)  # and the other way round
    assert (
        (L.value_rescale(L.inverse_value_rescale(y, eps), eps) - y).abs() / y.abs().clamp(min=1.0)
    ).max() < 1e-5


def test_inverse_in_float32_to_1e_5() -> None:
    x = wide_range(torch.float32)
    back = L.inverse_value_rescale(L.value_rescale(x))
    assert ((back - x).abs() / x.abs().clamp(min=1.0)).max() < 1e-5


def test_h_by_hand() -> None:
    x = torch.tensor([0.0, 3.0, -8.0, 99.0])
    expected = [0.0, 1.0 + 0.003, -(2.0 + 0.008), 9.0 + 0.099]  # sqrt(4)-1, sqrt(9)-1, sqrt(100)-1
    assert L.value_rescale(x).tolist() == pytest.approx(expected, abs=1e-6)


def test_rescaled_n_step_target_by_hand() -> None:
    # a 3-step return r = 1 + 0.9 * 0 + 0.81 * 2 = 2.62, discount 0.9^3 = 0.729, next value h(10)
    next_q = L.value_rescale(torch.tensor([10.0, 10.0]))
    reward = torch.tensor([2.62, 2.62])
    discount = torch.tensor([0.729, 0.729])
    terminated = torch.tensor([0.0, 1.0])
    y = L.rescaled_q_target(next_q, reward, discount, terminated)
    unscaled = 2.62 + 0.729 * 10.0  # 9.91
    assert y[0].item() == pytest.approx(math.sqrt(unscaled + 1) - 1 + 1e-3 * unscaled, abs=1e-5)
    assert y[1].item() == pytest.approx(math.sqrt(2.62 + 1) - 1 + 1e-3 * 2.62, abs=1e-5)  # no bootstrap


class _Encoder(torch.nn.Module):
    out_dim = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_dqn_switch_changes_only_the_target() -> None:
    torch.manual_seed(0)
    batch = {
        "obs": torch.randn(4, 3),
        "next_obs": torch.randn(4, 3),
        "action": torch.tensor([0, 1, 0, 1]),
        "reward": torch.tensor([1.0, -2.0, 0.5, 30.0]),
        "discount": torch.full((4,), 0.99),
        "terminated": torch.tensor([0.0, 0.0, 1.0, 0.0]),
    }
    plain = make_q_network(_Encoder(), 2, DQNConfig(double=True))
    rescaled = make_q_network(_Encoder(), 2, DQNConfig(double=True, value_rescaling=True))
    rescaled.load_state_dict(plain.state_dict())
    target = make_q_network(_Encoder(), 2, DQNConfig())
    q_next = target.q_values(batch["next_obs"])
    greedy = plain.q_values(batch["next_obs"]).argmax(-1, keepdim=True)
    next_v = q_next.gather(1, greedy).squeeze(1)
    q_a = plain.q_values(batch["obs"]).gather(1, batch["action"].unsqueeze(1)).squeeze(1).detach()
    y_plain = batch["reward"] + 0.99 * (1 - batch["terminated"]) * next_v
    y_rescaled = L.value_rescale(
        batch["reward"] + 0.99 * (1 - batch["terminated"]) * L.inverse_value_rescale(next_v)
    )
    assert torch.allclose(plain.loss(batch, target).priorities, (q_a - y_plain).abs(), atol=1e-6)
    assert torch.allclose(rescaled.loss(batch, target).priorities, (q_a - y_rescaled).abs(), atol=1e-6)


def test_dqn_switch_refused_for_distributional_heads() -> None:
    with pytest.raises(D2RLError, match="value_rescaling"):
        make_q_network(_Encoder(), 2, DQNConfig(distributional="c51", value_rescaling=True))
