"""The evaluator's Actor: explore flag, end-of-training schedules, recurrent state, Box clipping."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from d2rl.evaluation import END_OF_TRAINING, Actor


class Spy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[bool, int]] = []

    def initial_state(self, n: int) -> None:
        return None

    def act(self, obs, state, explore, env_step):  # type: ignore[no-untyped-def]
        self.calls.append((explore, env_step))
        return torch.full((obs.shape[0], 1), 5.0), {}, state


def test_stochastic_evaluation_explores_as_at_the_end_of_training() -> None:
    """``eval_deterministic=false`` must not act with the initial exploration (DQN: epsilon 1)."""
    spy = Spy()
    Actor(spy, 2, deterministic=False, action_space=gym.spaces.Discrete(2))(np.zeros((2, 4)))  # type: ignore[arg-type]
    Actor(spy, 2, deterministic=True, action_space=gym.spaces.Discrete(2))(np.zeros((2, 4)))  # type: ignore[arg-type]
    assert spy.calls == [(True, END_OF_TRAINING), (False, END_OF_TRAINING)]


def test_box_actions_are_clipped_to_the_bounds() -> None:
    space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    out = Actor(Spy(), 2, deterministic=True, action_space=space)(np.zeros((2, 3), np.float32))  # type: ignore[arg-type]
    assert (out == 2.0).all()
