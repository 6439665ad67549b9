"""Grad-CAM (d2rl/gradcam.py) on a hand-built network whose important pixels are known."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from d2rl.core import Policy
from d2rl.errors import D2RLError
from d2rl.gradcam import GradCAM, Thinned, overlay, pick_layers

P0, P1 = (2, 5), (6, 1)  # where action 0's and action 1's evidence lies


class TwoSpots(Policy):
    """Two input channels, each with one bright pixel; a 1x1 identity conv keeps them apart; action
    k's score is the sum of channel k (so only P0 matters to action 0, only P1 to action 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(2).reshape(2, 2, 1, 1))

    def action_scores(self, obs: torch.Tensor, state: Any = None) -> torch.Tensor:
        return torch.relu(self.conv(obs.float())).sum(dim=(2, 3))  # [B, 2]

    def act(self, obs, state=None, explore=True, env_step=0):  # type: ignore[no-untyped-def]
        return self.action_scores(obs).argmax(-1), {}, state


def two_spots_obs() -> np.ndarray:
    obs = np.zeros((2, 8, 8), np.float32)
    obs[0][P0] = 1.0
    obs[1][P1] = 1.0
    obs += 0.01  # a faint background everywhere
    return obs


def test_the_map_peaks_where_the_chosen_actions_evidence_is() -> None:
    policy = TwoSpots()
    cam = GradCAM(policy, pick_layers(policy, []))
    for action, spot, other in ((0, P0, P1), (1, P1, P0)):
        m = cam(two_spots_obs(), np.int64(action))
        assert m.shape == (8, 8)
        assert np.unravel_index(m.argmax(), m.shape) == spot
        assert m[spot] == pytest.approx(1.0) and m[other] < 0.05
    cam.remove()
    assert not policy.conv._forward_hooks


def test_the_map_is_upsampled_to_the_frame() -> None:
    policy = TwoSpots()
    m = GradCAM(policy, pick_layers(policy, ["conv"]))(two_spots_obs(), np.int64(0), size=(80, 80))
    assert m.shape == (80, 80)
    r, c = np.unravel_index(m.argmax(), m.shape)
    assert abs(r // 10 - P0[0]) <= 1 and abs(c // 10 - P0[1]) <= 1


def test_agents_without_conv_layers_are_refused_in_one_line() -> None:
    mlp = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(D2RLError, match="Grad-CAM needs a conv network") as e:
        pick_layers(mlp, [])  # type: ignore[arg-type]
    assert "\n" not in str(e.value)
    with pytest.raises(D2RLError, match="no conv layer named"):
        pick_layers(TwoSpots(), ["encoder.9"])


def test_overlay_and_thinned_frames() -> None:
    frame = np.zeros((8, 8, 3), np.uint8)
    out = overlay(frame, np.eye(8), alpha=0.5)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert out[0, 0].sum() > 0 and out[0, 1].sum() == 0  # colour only where the map is high
    t = Thinned(4)
    for i in range(1000):
        t.add(np.full(1, i))
    steps = [s for s, _ in t.pick()]
    assert len(steps) == 4 and steps[0] == 0 and steps[-1] > 700
