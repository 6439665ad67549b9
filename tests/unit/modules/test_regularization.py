"""Spectral norm, batch-norm switch and network randomization (random conv + feature matching)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from d2rl.modules.cnn import build_impala_resnet
from d2rl.modules.mlp import build as build_mlp
from d2rl.modules.regularization import (
    RandomConv,
    apply_spectral_norm,
    feature_matching_loss,
    norm2d,
    reset_random_convs,
    set_random_convs,
)
from d2rl.networks import ImpalaResNetConfig, MLPConfig


def test_spectral_norm_makes_every_layer_1_lipschitz_after_power_iterations() -> None:
    torch.manual_seed(0)
    net = build_mlp(MLPConfig(hidden_sizes=[32, 16], spectral_norm=True), (8,))
    x = torch.randn(4, 8)
    for _ in range(30):  # each training-mode forward is one power iteration
        net(x)
    net.eval()
    for layer in net.layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach(), ord=2)
        torch.testing.assert_close(sigma, torch.tensor(1.0), rtol=1e-3, atol=1e-3)
    # deep copies (target networks) work and compute the same function
    target = copy.deepcopy(net)
    torch.testing.assert_close(target(x), net(x))


def test_spectral_norm_reaches_convs_and_only_the_original_weights_are_trained() -> None:
    conv = apply_spectral_norm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(2, 2)))
    names = {n for n, _ in conv.named_parameters()}
    assert names == {
        "0.bias",
        "0.parametrizations.weight.original",
        "1.bias",
        "1.parametrizations.weight.original",
    }


def test_norm2d_switch() -> None:
    assert isinstance(norm2d(True, 4), nn.BatchNorm2d) and isinstance(norm2d(False, 4), nn.Identity)


def test_random_conv_is_untrained_redrawn_by_reset_and_switchable() -> None:
    torch.manual_seed(0)
    rc = RandomConv(3)
    assert not list(rc.parameters()) and "weight" in dict(rc.named_buffers())
    std = rc.weight.std().item()
    assert 0.1 < std < 0.5  # Glorot normal: sqrt(2 / (27 + 27)) = 0.19
    x = torch.rand(2, 3, 8, 8)
    before = rc(x)
    rc.reset()
    assert not torch.allclose(before, rc(x))
    rc.enabled = False
    assert rc(x) is x


def test_reset_random_convs_redraws_and_picks_clean_iterations() -> None:
    torch.manual_seed(0)
    net = build_impala_resnet(ImpalaResNetConfig(channels=[8], features=16, random_conv=True), (3, 16, 16))
    w = net.randomize.weight.clone()
    assert reset_random_convs(net) is True and not torch.equal(w, net.randomize.weight)
    assert reset_random_convs(net, clean_prob=1.0) is False and net.randomize.enabled is False
    g = torch.Generator().manual_seed(0)
    flags = [reset_random_convs(net, clean_prob=0.9, generator=g) for _ in range(400)]
    assert 0.04 < sum(flags) / 400 < 0.16
    assert reset_random_convs(nn.Linear(2, 2)) is False  # no random conv: nothing to do


def test_random_conv_changes_features_and_clean_mode_restores_them() -> None:
    torch.manual_seed(0)
    cfg = ImpalaResNetConfig(channels=[8], features=16)
    plain = build_impala_resnet(cfg, (3, 16, 16))
    torch.manual_seed(0)
    rand = build_impala_resnet(ImpalaResNetConfig(channels=[8], features=16, random_conv=True), (3, 16, 16))
    rand.load_state_dict(plain.state_dict(), strict=False)  # same trained weights
    obs = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    assert not torch.allclose(rand(obs), plain(obs))
    set_random_convs(rand, False)
    torch.testing.assert_close(rand(obs), plain(obs))


def test_feature_matching_loss_is_the_mse_to_detached_clean_features() -> None:
    torch.manual_seed(0)
    net = build_impala_resnet(ImpalaResNetConfig(channels=[8], features=16, random_conv=True), (3, 16, 16))
    obs = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    features = net(obs)  # the learner's randomized forward
    set_random_convs(net, False)
    clean = net(obs).detach()
    set_random_convs(net, True)
    loss = feature_matching_loss(net, obs, features)
    torch.testing.assert_close(loss, (features - clean).square().mean())
    torch.testing.assert_close(feature_matching_loss(net, obs), loss)  # computes the features itself
    assert net.randomize.enabled is True  # state restored
    set_random_convs(net, False)
    assert feature_matching_loss(net, obs).item() > 0  # random even in a clean iteration
    assert net.randomize.enabled is False
    loss.backward()
    assert net.fc.weight.grad is not None
    with pytest.raises(ValueError, match="random_conv=true"):
        feature_matching_loss(nn.Linear(2, 2), torch.zeros(1, 2))
