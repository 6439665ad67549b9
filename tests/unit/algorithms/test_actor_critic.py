"""What SAC and TD3 share: one encoder trained by the critic loss only, a Polyak target encoder,
action rescaling, and one-line refusals."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from d2rl.algorithms.actor_critic.nets import polyak
from d2rl.algorithms.sac import SACConfig
from d2rl.algorithms.sac.learner import build as build_sac
from d2rl.algorithms.td3 import TD3Config
from d2rl.algorithms.td3.learner import build as build_td3
from d2rl.errors import D2RLError

PIXELS = gym.spaces.Box(0, 255, (3, 36, 36), np.uint8)  # the smallest NatureCNN input
BOX = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)
SMALL_CNN = {"features": 16}


def _batch(action_space: gym.Space, B: int = 8) -> dict[str, torch.Tensor]:
    discrete = isinstance(action_space, gym.spaces.Discrete)
    return {
        "obs": torch.randint(0, 256, (B, 3, 36, 36), dtype=torch.uint8),
        "action": torch.randint(0, 3, (B,)) if discrete else torch.rand(B, 2) * 2 - 1,
        "reward": torch.randn(B),
        "next_obs": torch.randint(0, 256, (B, 3, 36, 36), dtype=torch.uint8),
        "terminated": torch.zeros(B),
        "discount": torch.full((B,), 0.99),
    }


def _grads(module: torch.nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


@pytest.mark.parametrize("action_space", [BOX, gym.spaces.Discrete(3)], ids=["box", "discrete"])
def test_sac_encoder_learns_from_the_critic_loss_only(make_ctx, action_space: gym.Space) -> None:  # type: ignore[no-untyped-def]
    built = build_sac(
        SACConfig(hidden_sizes=[16]), make_ctx(PIXELS, action_space, network="nature_cnn", **SMALL_CNN)
    )
    learner = built.learner
    encoder = learner.policy.encoder
    out = learner.losses(_batch(action_space))
    assert out.alpha is not None
    (out.actor + out.alpha).backward(retain_graph=True)
    assert all(g is None for g in _grads(encoder))  # the actor reads detached features
    assert all(g is None for g in _grads(learner.critics.q))  # ... and detached critic weights
    assert all(g is not None for g in _grads(learner.policy.actor))
    out.critic.backward()
    assert all(g is not None and g.abs().sum() > 0 for g in _grads(encoder))
    # the target encoder is a separate copy that gradients never reach
    assert learner.critics.target_encoder is not None
    assert all(not p.requires_grad for p in learner.critics.target_encoder.parameters())


def test_td3_encoder_learns_from_the_critic_loss_only(make_ctx) -> None:  # type: ignore[no-untyped-def]
    built = build_td3(TD3Config(hidden_sizes=[16]), make_ctx(PIXELS, BOX, network="nature_cnn", **SMALL_CNN))
    learner = built.learner
    encoder = learner.policy.encoder
    batch = _batch(BOX)
    learner.actor_loss(encoder(batch["obs"])).backward()
    assert all(g is None for g in _grads(encoder))
    assert all(g is None for g in _grads(learner.critics.q))
    assert all(g is not None for g in _grads(learner.policy.actor))
    q_loss, td, q = learner.critic_loss(batch)
    assert td.shape == q.shape == (2, 8)
    q_loss.backward()
    assert all(g is not None and g.abs().sum() > 0 for g in _grads(encoder))


def test_target_encoder_is_polyak_averaged(make_ctx) -> None:  # type: ignore[no-untyped-def]
    critics = build_sac(
        SACConfig(hidden_sizes=[16]), make_ctx(PIXELS, BOX, network="nature_cnn", **SMALL_CNN)
    ).learner.critics
    assert critics.target_encoder is not None
    online_conv = critics.online[-1]  # the encoder's parameters come last
    target_conv = critics.target[-1]
    assert online_conv is not target_conv
    torch.testing.assert_close(online_conv, target_conv)  # starts as a copy
    with torch.no_grad():
        online_conv.add_(1.0)
    before = target_conv.clone()
    polyak(critics.target, critics.online, 0.1)
    torch.testing.assert_close(target_conv, before + 0.1)


def test_identity_encoder_has_nothing_to_learn_or_average(make_ctx) -> None:  # type: ignore[no-untyped-def]
    learner = build_td3(TD3Config(hidden_sizes=[16]), make_ctx(gym.spaces.Box(-1, 1, (3,)), BOX)).learner
    assert learner.critics.target_encoder is None
    assert not any(True for _ in learner.policy.encoder.parameters())
    assert len(learner.critics.online) == len(list(learner.critics.q.parameters()))


def test_actions_map_to_the_box_and_back(make_ctx) -> None:  # type: ignore[no-untyped-def]
    scale = build_td3(TD3Config(hidden_sizes=[8]), make_ctx(gym.spaces.Box(-1, 1, (3,)), BOX)).policy.scale
    a = torch.tensor([[-1.0, 0.5]])
    torch.testing.assert_close(scale.to_env(a), torch.tensor([[-2.0, 1.0]]))
    torch.testing.assert_close(scale.from_env(scale.to_env(a)), a)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"core": "lstm"}, "no recurrent policy; drop network.core=lstm"),
        ({}, "algo.activation must be one of"),
    ],
)
def test_refusals_are_one_line(make_ctx, options: dict[str, str], match: str) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(PIXELS, BOX, network="nature_cnn", **options)
    activation = "relu" if options else "gelu"
    for build, cfg in (
        (build_sac, SACConfig(activation=activation)),
        (build_td3, TD3Config(activation=activation)),
    ):
        with pytest.raises(D2RLError, match=match) as err:
            build(cfg, ctx)
        assert "\n" not in str(err.value)


def test_td3_refuses_discrete_actions_in_one_line(make_ctx) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(D2RLError, match="td3 supports box actions") as err:
        build_td3(TD3Config(), make_ctx(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2)))
    assert "\n" not in str(err.value)
