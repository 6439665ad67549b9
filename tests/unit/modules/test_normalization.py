"""Observation normalisation: uint8 pixels are normalised as floats, in training and evaluation alike."""

from __future__ import annotations

import torch

from d2rl.modules.normalization import ObsNormalizer


def test_uint8_observations_normalise_like_their_float_values() -> None:
    torch.manual_seed(0)
    norm = ObsNormalizer((2, 3, 3))
    pixels = torch.randint(0, 256, (16, 2, 3, 3), dtype=torch.uint8)
    norm.rms.update(pixels)  # what the collector does with the uint8 tensors it steps
    train_input = norm(pixels)  # collection: uint8 tensors from the env
    eval_input = norm(pixels.to(torch.float32))  # evaluation: Agent.act casts to float32 first
    assert train_input.dtype == torch.float32
    torch.testing.assert_close(train_input, eval_input)
    by_hand = (pixels.double() - norm.rms.mean) / (norm.rms.var + norm.epsilon).sqrt()
    torch.testing.assert_close(train_input, by_hand.clamp(-10, 10).float())
    assert train_input.abs().max() < 3  # normalised, not wrapped-around uint8 values
