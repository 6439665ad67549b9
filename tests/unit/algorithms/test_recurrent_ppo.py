"""Recurrent PPO/A2C machinery: sequence minibatches, stored states, masking at episode starts.

The strongest check: on the first epoch, before any update, the update-time recomputation of
log-probs and values (sequences from their stored initial states, masked at episode starts)
equals what the policy computed while acting one step at a time with the Loop's resets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from omegaconf import DictConfig

from d2rl.algorithms.on_policy import STATE_FIELD, RecurrentActorCriticPolicy
from d2rl.buffers.rollout import Rollout, sequence_minibatches, to_sequences
from d2rl.envs import make_vec_env
from d2rl.errors import D2RLError
from d2rl.loops.local import LocalLoop
from d2rl.train import build_algorithm


def _batch(T: int, N: int) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, ...]]:
    t = torch.arange(T).view(T, 1).expand(T, N)
    n = torch.arange(N).view(1, N).expand(T, N)
    code = (100 * t + n).float()  # step t of env n
    states = (torch.stack([code, -code], -1).unsqueeze(-1),)  # [T, N, K=2, 1]: "state entering (t, n)"
    return {"code": code, "obs": torch.stack([code, code + 0.5], -1)}, states


@pytest.mark.parametrize("seq_len", [0, 1, 4, 12])
def test_sequence_minibatches_keep_time_order_and_their_stored_initial_states(seq_len: int) -> None:
    T, N, num_mb = 12, 3, 3
    batch, states = _batch(T, N)
    seqs, initial = to_sequences(batch, states, seq_len)
    L = seq_len or T
    assert seqs["code"].shape == (L, N * T // L)
    seen: list[tuple[int, int]] = []
    for mb, state in sequence_minibatches(seqs, initial, num_mb, torch.Generator().manual_seed(0)):
        M = state[0].shape[1]
        assert state[0].shape == (2, M, 1)  # [K, M, ...]
        code = mb["code"].view(L, M)  # time-major flat -> [L, M]
        assert torch.equal(mb["obs"].view(L, M, 2)[..., 0], code)  # fields stay aligned
        start = code[0]
        steps = torch.arange(L).view(L, 1) * 100
        assert torch.equal(code, start + steps)  # consecutive steps of one env, in time order
        assert torch.equal(state[0][0, :, 0], start)  # the state stored at the chunk's first step
        assert torch.equal(state[0][1, :, 0], -start)
        seen += [(int(c) // 100, int(c) % 100) for c in start]
    # one epoch covers every chunk exactly once; chunks start at multiples of L
    assert sorted(seen) == sorted((c * L, n) for c in range(T // L) for n in range(N))


def test_sequence_length_must_divide_the_rollout() -> None:
    batch, states = _batch(10, 2)
    with pytest.raises(ValueError, match="divide"):
        to_sequences(batch, states, 4)


def _recurrent_run(make_cfg: Callable[..., DictConfig], *overrides: str) -> tuple[Any, LocalLoop]:
    cfg = make_cfg(
        "algo=ppo",
        "env=cartpole_positions",
        "env.num_envs=3",
        "env.max_episode_steps=9",  # truncations inside the rollout, at different phases
        "network.hidden_sizes=[16]",
        "network.core_size=16",
        "network.dnc_memory_slots=8",
        "network.dnc_word_size=4",
        "network.dnc_read_heads=2",
        "network.transformer_memory_steps=6",
        "algo.num_steps=24",
        "algo.num_minibatches=3",
        *overrides,
    )
    envs = make_vec_env(cfg.env, 0)
    built, _ = build_algorithm(cfg, envs, 0)
    loop = LocalLoop(envs, built.policy, built.storage, built.schedule, 10**6, seed=0)
    loop.start()
    return built, loop


def _fields(rollout: Rollout, adv: torch.Tensor, ret: torch.Tensor) -> dict[str, torch.Tensor]:
    d = rollout.data
    return {"obs": d["obs"], "action": d["action"], "logprob": d["logprob"], "value": d["value"],
            "advantage": adv, "ret": ret}  # fmt: skip


@pytest.mark.parametrize(
    ("core", "bptt_len", "shared"),
    [
        ("lstm", 0, "false"),
        ("lstm", 6, "true"),
        ("lstm", 1, "false"),
        ("gru", 8, "false"),
        ("dnc", 6, "true"),
        ("transformer", 12, "false"),
    ],
)
def test_first_epoch_recomputation_equals_acting(
    make_cfg: Callable[..., DictConfig], core: str, bptt_len: int, shared: str
) -> None:
    built, loop = _recurrent_run(
        make_cfg, f"network.core={core}", f"algo.bptt_len={bptt_len}", f"algo.shared_encoder={shared}"
    )
    policy, learner = built.policy, built.learner
    assert isinstance(policy, RecurrentActorCriticPolicy)
    loop.collect_round()
    rollout = loop.collect_round()  # starts mid-episode: a non-zero stored initial state
    d = rollout.data
    assert bool(d["first"][1:].any())  # episode starts inside the rollout
    assert bool(d["truncated"].any())
    assert any(bool(s[0].abs().sum() > 0) for s in policy.stored_states(d))
    adv, ret = learner.advantages(rollout)
    n_mb = 0
    for mb, state in learner.minibatch_sampler(rollout, _fields(rollout, adv, ret), 3, bptt_len)():
        with torch.no_grad():
            logprob, _, value = learner.evaluate(mb, state)
        torch.testing.assert_close(logprob, mb["logprob"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(value, mb["value"], atol=1e-5, rtol=1e-5)
        n_mb += 1
    assert n_mb == 3
    # the bootstrap state after the last step (recomputed from storage) is the Loop's own state
    _, last_value = policy.bootstrap_values(rollout)
    torch.testing.assert_close(last_value, policy.value(rollout.last_obs, loop.state), atol=1e-5, rtol=1e-5)


def test_without_masks_the_recomputation_differs(make_cfg: Callable[..., DictConfig]) -> None:
    """The equality above is not vacuous: ignoring episode starts changes the values."""
    built, loop = _recurrent_run(make_cfg, "network.core=lstm")
    learner = built.learner
    rollout = loop.collect_round()
    adv, ret = learner.advantages(rollout)
    ((mb, state),) = list(learner.minibatch_sampler(rollout, _fields(rollout, adv, ret), 1)())
    with torch.no_grad():
        _, _, masked = learner.evaluate(mb, state)
        _, _, unmasked = learner.evaluate({**mb, "first": torch.zeros_like(mb["first"])}, state)
    torch.testing.assert_close(masked, mb["value"], atol=1e-5, rtol=1e-5)
    assert (unmasked - mb["value"]).abs().max() > 1e-3


def test_loop_resets_the_state_of_finished_episodes_only(make_cfg: Callable[..., DictConfig]) -> None:
    _built, loop = _recurrent_run(make_cfg, "network.core=gru")
    rollout = loop.collect_round()
    states = RecurrentActorCriticPolicy.stored_states(rollout.data)
    first = rollout.data["first"]  # [T, N]
    norms = states[0].flatten(2).abs().sum(-1)  # [T, N]
    assert bool((norms[first] == 0).all())  # the state entering an episode's first step is zero
    assert bool((norms[~first] > 0).all())  # and only there
    assert set(rollout.data) >= {f"{STATE_FIELD}0"}


def test_a2c_with_a_core_updates_from_whole_sequences(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg("algo=a2c", "env=memory_cue", "env.num_envs=2", "network.core=lstm", "network.core_size=8",
                   "network.hidden_sizes=[8]", "algo.num_steps=7")  # fmt: skip
    envs = make_vec_env(cfg.env, 0)
    built, _ = build_algorithm(cfg, envs, 0)
    loop = LocalLoop(envs, built.policy, built.storage, built.schedule, 10**6, seed=0)
    loop.start()
    rollout = loop.collect_round()
    before = [p.detach().clone() for p in built.policy.parameters()]

    opt = built.learner.configure_optimizers()
    built.learner.raw_optimizers = lambda: [opt]  # type: ignore[method-assign]
    out = built.learner.training_step(rollout, 0)
    assert all(torch.isfinite(torch.tensor(v)) for v in out.values() if v == v)
    assert any(not torch.equal(a, b) for a, b in zip(before, built.policy.parameters(), strict=True))
    envs.close()


def test_bptt_len_that_does_not_divide_the_rollout_is_refused(make_cfg: Callable[..., DictConfig]) -> None:
    with pytest.raises(D2RLError, match="bptt_len=5 must be 0"):
        _recurrent_run(make_cfg, "network.core=lstm", "algo.bptt_len=5")


def test_uneven_and_too_few_sequences_still_make_whole_sequence_minibatches() -> None:
    batch, states = _batch(4, 5)
    seqs, initial = to_sequences(batch, states)
    sizes = [s[0].shape[1] for _, s in sequence_minibatches(seqs, initial, 2)]
    assert sorted(sizes) == [2, 3]
    batch, states = _batch(4, 2)
    seqs, initial = to_sequences(batch, states)
    assert [s[0].shape[1] for _, s in sequence_minibatches(seqs, initial, 4)] == [1, 1]


class _CueKeeper(torch.nn.Module):
    """A scripted recurrent policy for env=memory_cue: keeps the cue in its state, answers it."""

    def initial_state(self, n: int) -> tuple[torch.Tensor]:
        return (torch.zeros(1, n, 1),)

    def reset_state(self, state: Any, done: torch.Tensor) -> Any:
        return tuple(s * (~done).float().view(1, -1, 1) for s in state)

    def act(self, obs, state, explore, env_step):  # type: ignore[no-untyped-def]
        cue = obs[:, 0].view(1, -1, 1)
        memory = torch.where(cue != 0, cue, state[0])  # the cue is shown at the first step only
        return (memory[0, :, 0] > 0).long(), {}, (memory,)


def test_evaluation_carries_the_state_across_steps_and_resets_it(make_cfg: Callable[..., DictConfig]) -> None:
    from d2rl.evaluation import evaluate

    env_cfg = make_cfg("env=memory_cue", "env.kwargs.length=5").env
    returns = evaluate(_CueKeeper(), env_cfg, episodes=40, seed=3, max_envs=8)  # type: ignore[arg-type]
    assert (returns == 1.0).all()  # 5 rounds of 8 envs; without the state it would be chance (~0)
