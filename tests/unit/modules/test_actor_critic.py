"""ActorCritic with a shared encoder: one encoder, computed once, trained by both losses."""

from __future__ import annotations

import torch

from d2rl.modules.cnn import NatureCNN
from d2rl.modules.heads import ActorCritic, CategoricalHead


class _Counting(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.calls, self.out_dim = inner, 0, inner.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


def test_shared_encoder_runs_once_and_gets_both_gradients() -> None:
    torch.manual_seed(0)
    enc = _Counting(NatureCNN((4, 84, 84), features=32))
    model = ActorCritic(enc, None, CategoricalHead(32, 6))
    obs = torch.randint(0, 256, (5, 4, 84, 84), dtype=torch.uint8)
    action, logprob, value = model.act(obs)
    assert enc.calls == 1 and action.shape == (5,) and logprob.shape == (5,) and value.shape == (5,)
    torch.testing.assert_close(value, model.value(obs))
    enc.calls = 0
    new_logprob, _, new_value = model.evaluate(obs, action)
    assert enc.calls == 1
    torch.testing.assert_close(new_logprob, logprob)
    # the value loss alone reaches the shared encoder
    new_value.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    assert not any(k.startswith("critic_encoder") for k in model.state_dict())


def test_separate_encoders_by_default() -> None:
    torch.manual_seed(0)
    a, c = NatureCNN((4, 84, 84), features=32), NatureCNN((4, 84, 84), features=16)
    model = ActorCritic(a, c, CategoricalHead(32, 3))
    obs = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    _, _, value = model.act(obs)
    torch.testing.assert_close(value, model.value(obs))
    assert model.value_head.in_features == 16
