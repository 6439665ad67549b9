"""EnsembleMLP: each member is an independent MLP; detached weights get no gradient."""

from __future__ import annotations

import torch

from d2rl.modules.ensemble import EnsembleMLP


def test_members_are_independent_mlps() -> None:
    net = EnsembleMLP(3, 4, [8, 8], 2)
    x = torch.randn(5, 4)
    out = net(x)  # [3, 5, 2]
    assert out.shape == (3, 5, 2)
    for e in range(3):
        h = x
        for i, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
            h = h @ w[e] + b[e, 0]
            if i < 2:
                h = torch.relu(h)
        torch.testing.assert_close(out[e], h)


def test_detached_params_pass_gradient_to_input_only() -> None:
    net = EnsembleMLP(2, 3, [4], 1)
    x = torch.randn(6, 3, requires_grad=True)
    net(x, detach_params=True).sum().backward()
    assert x.grad is not None
    assert all(p.grad is None for p in net.parameters())
