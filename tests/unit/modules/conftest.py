"""Shared checks for network modules."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn


def gradients_reach_every_parameter(net: nn.Module, loss_fn: Callable[[], torch.Tensor]) -> None:
    """Every parameter gets a non-zero gradient.

    Checked after one small signed-gradient ascent step, so parameters gated by a zero-initialised
    scale (SAGAN's ``gamma``) count too (ascent on a sum of squares keeps ReLUs alive).
    """
    loss_fn().backward()
    with torch.no_grad():
        for p in net.parameters():
            if p.grad is not None:
                p += 1e-2 * p.grad.sign()
    net.zero_grad()
    loss_fn().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


@pytest.fixture
def assert_gradients() -> Callable[[nn.Module, Callable[[], torch.Tensor]], None]:
    return gradients_reach_every_parameter


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)
