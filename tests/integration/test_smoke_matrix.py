"""The smoke matrix: every registered algorithm and algo preset x every env suite's smoke cases.

Cases come from the registry at collection time: the algorithms (``registry.algorithms()``), the
YAML presets (``conf/algo/*.yaml`` and plugins' ``algo/`` folders) and, for each env suite, the
override strings it declares in ``EnvSuiteSpec.smoke``. A new algorithm or suite joins by being
registered; there is no list here to edit.

Each case runs a few hundred env steps through ``train(cfg)`` with the real suite, tiny networks
and two envs. A combination the algorithm declares (action space in ``spec.action_spaces``,
observation kind in ``spec.observations``) must train: no exception, finite ``loss/*`` values,
episodes counted as whole games, and a final checkpoint that the ``d2rl-eval`` code path loads
and plays. Any other combination must be refused by ``train(cfg)`` before training, with a
one-line ``D2RLError``.

Tiny settings are chosen by the fields an algorithm's config dataclass has (``tiny``); an
algorithm whose keys are named otherwise runs with its defaults. A suite whose steps are slow
(rendered pixels) may shorten its runs with ``trainer.total_env_steps`` in its smoke string.
Smoke strings that choose a ``network=`` keep it; otherwise pixel envs get a small
``nature_cnn`` and vector envs a 16-unit MLP. Budget: about 5 minutes of one core for the
whole matrix; trim steps, not cases.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import math
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf

from d2rl import registry
from d2rl.cli import evaluate_checkpoint, yaml_options
from d2rl.config import EvalConfig
from d2rl.envs import action_space_kind, env_facts, make_vec_env
from d2rl.errors import D2RLError
from d2rl.train import train

TOTAL_ENV_STEPS = 256  # a suite whose steps are slow may set fewer in its smoke string
NUM_ENVS = 2
RUN = [
    "~tuned",
    f"env.num_envs={NUM_ENVS}",
    "trainer.final_eval_episodes=1",
    "trainer.eval_period_env_steps=0",
    "trainer.checkpoint_period_env_steps=0",
    "trainer.log_period_env_steps=64",
    "trainer.progress_bar=false",
    "trainer.torch_threads=1",
    "logger.tensorboard=false",
    "logger.learning_curve=false",
    "replay.capacity=1000",
]


def tiny(total: int) -> dict[str, Any]:
    """``algo.<field>=<value>`` for a run of ``total`` env steps: at least 3 rounds of updates."""
    quarter = total // 4
    return {
        "num_steps": max(quarter // NUM_ENVS, 4),  # on-policy rollout per env
        "update_epochs": 1,
        "num_minibatches": 2,
        "n_pi": 2,  # PPG's auxiliary phase and DAAC's value schedule happen within the run
        "batch_size": 16,
        "learning_starts_env_steps": quarter,
        "iteration_env_steps": quarter,
        "round_env_steps": quarter,
        "steps_per_iteration": max(quarter // NUM_ENVS, 1),
        "update_period_env_steps": 16,  # few gradient steps
        "gradient_steps_per_env_step": 0.25,
        "target_update_period_env_steps": quarter,
        "hidden_sizes": "[16]",  # actor-critics' MLP heads
        "head_hidden_size": 16,  # Q heads with a hidden layer (Rainbow: 512 per stream)
    }


VECTOR_NETWORK = ["network=mlp", "network.hidden_sizes=[16]"]
PIXEL_NETWORK = ["network=nature_cnn", "network.features=32"]


def _algorithms() -> list[str]:
    return sorted(set(registry.algorithms().entries) | yaml_options("algo"))


def _smoke_cases() -> list[tuple[str, str]]:
    return [
        (name, smoke)
        for name, entry in sorted(registry.env_suites().entries.items())
        for smoke in entry.spec.smoke
    ]


def _case_id(smoke: str) -> str:
    """``env=atari_breakout env.kwargs.backend=gymnasium ...`` -> ``atari_breakout-backend_gymnasium``."""
    parts = []
    for token in shlex.split(smoke):
        key, _, value = token.lstrip("+").partition("=")
        if key == "env":
            parts.insert(0, value)
        elif key.startswith("env.kwargs."):
            parts.append(f"{key.rsplit('.', 1)[-1]}_{value}")
    return "-".join(parts)


# In the default run (CI) Atari is Breakout on the native backend (lives) and Pong on the
# gymnasium one; the other two pairings add no new observation or action kind and are `slow`.
SLOW_SMOKE = {"atari_pong-backend_native", "atari_breakout-backend_gymnasium"}

CASES = [
    pytest.param(
        algo,
        suite,
        smoke,
        id=f"{algo}-{_case_id(smoke)}",
        marks=[pytest.mark.slow] if _case_id(smoke) in SLOW_SMOKE else [],
    )
    for algo in _algorithms()
    for suite, smoke in _smoke_cases()
]


@dataclasses.dataclass(frozen=True)
class EnvKind:
    action: str  # discrete, box, ...
    pixels: bool
    lives: bool


_ENV_KINDS: dict[str, EnvKind | str] = {}  # smoke string -> kind, or why the case is skipped


def _env_kind(make_cfg: Callable[..., DictConfig], suite: str, smoke: str) -> EnvKind:
    """What the env gives, from one env of the real suite (cached per smoke string)."""
    if smoke not in _ENV_KINDS:
        spec = registry.get_env_suite(suite)
        missing = [m for m in spec.requires if importlib.util.find_spec(m) is None]
        if missing:
            _ENV_KINDS[smoke] = f"suite '{suite}' needs {', '.join(missing)}"
        else:
            cfg = make_cfg(*shlex.split(smoke))
            try:
                envs = make_vec_env(cfg.env, 0, num_envs=1)
            except D2RLError as e:  # an optional package the env needs is missing
                _ENV_KINDS[smoke] = str(e)
            else:
                facts = env_facts(envs)
                _ENV_KINDS[smoke] = EnvKind(
                    action_space_kind(envs.single_action_space), facts.pixels, facts.lives
                )
                envs.close()
    kind = _ENV_KINDS[smoke]
    if isinstance(kind, str):
        pytest.skip(kind)
    return kind


_ALGORITHMS: dict[str, Any] = {}  # algo (or preset) -> its AlgorithmSpec


def _algorithm_spec(make_cfg: Callable[..., DictConfig], algo: str) -> Any:
    """The registered algorithm behind ``algo``, a preset's included (cached per name)."""
    if algo not in _ALGORITHMS:
        _ALGORITHMS[algo] = registry.get_algorithm(make_cfg(f"algo={algo}", "~tuned").algo.name)
    return _ALGORITHMS[algo]


def _overrides(algo: str, smoke: str, pixels: bool, config_class: type) -> list[str]:
    smoke_args = shlex.split(smoke)
    chooses_network = any(a.startswith("network=") for a in smoke_args)
    network = [] if chooses_network else (PIXEL_NETWORK if pixels else VECTOR_NETWORK)
    total = next(
        (int(a.split("=", 1)[1]) for a in smoke_args if a.startswith("trainer.total_env_steps=")),
        TOTAL_ENV_STEPS,
    )
    fields = {f.name for f in dataclasses.fields(config_class)}
    algo_args = [f"algo.{k}={v}" for k, v in tiny(total).items() if k in fields]
    return [f"algo={algo}", *network, *RUN, f"trainer.total_env_steps={total}", *algo_args, *smoke_args]


def _metrics(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _check_whole_games(cfg: DictConfig, kind: EnvKind, rows: list[dict[str, str]], episodes: int) -> None:
    """Episodes are whole games: the summary and metrics.csv agree, and no episode outlives the cap.

    For a suite with lives, the smoke string caps episodes below the shortest possible game (a
    game over needs every life lost), so every whole game ends at the cap: each episode lasts
    exactly the cap and at most ``floor(steps per env / cap)`` games end per env. A life loss
    counted as an episode ends one earlier and fails both. (Clipped and unclipped returns cannot
    be told apart this early in Pong and Breakout, whose first points are all worth 1;
    tests/unit/envs/test_atari.py compares training and evaluation statistics for that.)
    """
    counted = sum(int(float(r["train/episodes"])) for r in rows if r.get("train/episodes"))
    assert counted == episodes, f"metrics.csv counts {counted} episodes, summary.json {episodes}"
    lengths = [float(r["train/episode_length"]) for r in rows if r.get("train/episode_length")]
    returns = [float(r["train/episode_return"]) for r in rows if r.get("train/episode_return")]
    assert all(math.isfinite(x) for x in returns + lengths)
    cap = cfg.env.max_episode_steps
    if cap is not None:
        assert max(lengths, default=0) <= cap, f"an episode outlived env.max_episode_steps={cap}: {lengths}"
    if kind.lives:
        assert cap is not None, "a suite with lives needs env.max_episode_steps in its smoke string"
        total = int(cfg.trainer.total_env_steps)
        games = NUM_ENVS * (total // NUM_ENVS // cap)
        assert episodes <= games, f"{episodes} episodes in {total} steps: lives counted as games?"
        assert all(x == cap for x in lengths), f"mean episode lengths {lengths} != cap {cap}: lives as games?"


@pytest.mark.parametrize(("algo", "suite", "smoke"), CASES)
def test_smoke(make_cfg: Callable[..., DictConfig], algo: str, suite: str, smoke: str) -> None:
    kind = _env_kind(make_cfg, suite, smoke)
    spec = _algorithm_spec(make_cfg, algo)
    cfg = make_cfg(*_overrides(algo, smoke, kind.pixels, spec.config_class))
    run = Path(cfg.output_dir)
    observation = "pixels" if kind.pixels else "vector"
    if kind.action not in spec.action_spaces or observation not in spec.observations:
        with pytest.raises(D2RLError) as refused:
            train(cfg)
        message = str(refused.value)
        assert message and "\n" not in message, f"not one line: {message!r}"
        assert not (run / "checkpoints").exists() and not (run / "summary.json").exists()
        return

    result = train(cfg)
    assert result["env_steps"] >= cfg.trainer.total_env_steps
    rows = _metrics(run)
    losses = [
        (c, float(v)) for r in rows for c, v in r.items() if c.startswith("loss/") and v not in ("", None)
    ]
    assert losses, "no loss/* value in metrics.csv"
    assert all(math.isfinite(v) for _, v in losses), [lv for lv in losses if not math.isfinite(lv[1])]
    summary = json.loads((run / "summary.json").read_text())
    _check_whole_games(cfg, kind, rows, int(summary["episodes"]))

    deterministic = bool(cfg.trainer.eval_deterministic)  # as the run's own evaluation
    played = evaluate_checkpoint(
        OmegaConf.structured(
            EvalConfig(checkpoint=str(run), episodes=1, num_envs=1, deterministic=deterministic)
        )
    )
    assert played["episodes"] == 1 and math.isfinite(played["return_mean"])
    assert played["env_steps"] == result["env_steps"]
