"""Compose-time range and relation checks: a bad value ends in one ``D2RLError`` line before
anything is built.

Three sources of checks, so a new algorithm joins by declaring nothing or very little:

1. Field names (``lr`` and ``*_lr`` > 0, sizes and counts >= 1, ``gamma``/``gae_lambda``/``tau`` in
   [0, 1], ``*_coef`` and ``*_env_steps`` >= 0, ...), for every numeric field of every schema.
2. Field metadata, which overrides the name rule: ``field(default=0.1, metadata={"range": (0, 1)})``
   (inclusive bounds, ``None`` for open), ``{"range": (0, None), "exclusive": True}`` for > 0,
   or ``{"check": False}`` to opt out.
3. A ``validate(self, cfg) -> list[str]`` method on the config dataclass for relations
   (``cfg`` is the whole composed config); each string is one problem, phrased like
   ``"algo.seq_len (8) must exceed algo.burn_in (10)"``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

from d2rl.errors import D2RLError

# (pattern on the field name, low, high, low exclusive); first match wins
_NAME_RULES: tuple[tuple[str, float | None, float | None, bool], ...] = (
    (r"^(lr|.+_lr|learning_rate)$", 0.0, None, True),
    (r"^(gamma|gamma_.+|gae_lambda|tau|target_tau|.*_fraction|update_proportion)$", 0.0, 1.0, False),
    (r"^(epsilon_initial|epsilon_final|beta_initial|beta_final|fraction_entropy_coef)$", 0.0, 1.0, False),
    (
        r"^(log_std_(min|max)|v_(min|max)|.*_clip|obs_clip|target_entropy.*|entropic_index)$",
        None,
        None,
        False,
    ),
    (
        r"^(batch_size|num_steps|num_minibatches|num_envs|capacity|n_step|seq_len|n_pi|"
        r"num_.+|.+_epochs|gradient_steps|policy_delay|round_env_steps|"
        r"iteration_env_steps|update_period_env_steps|target_update_period.*|total_env_steps|"
        r"episodes|eval_episodes|final_eval_episodes|torch_threads)$",
        1.0,
        None,
        False,
    ),
    (
        r"^(.+_size|.+_sizes|bptt_len|.+_coef|.+_eps|.+_env_steps|.+_period.*|max_grad_norm|.+_noise.*|alpha|.*_alpha|burn_in|"
        r"seq_overlap|keep_checkpoints|gradient_steps_per_env_step|priority_.+|importance_.+|kappa|"
        r"ou_.+|obs_norm_init_rollouts|.+_scale|.+_init)$",
        0.0,
        None,
        False,
    ),
)
_CHOICES = {
    ("trainer", "nan_policy"): ("stop", "skip"),
    ("env", "vectorization"): ("sync", "async"),
    ("replay", "kind"): ("none", "uniform", "prioritized"),
}


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _range_of(f: dataclasses.Field[Any]) -> tuple[float | None, float | None, bool] | None:
    meta: Any = f.metadata or {}
    if meta.get("check") is False:
        return None
    if "range" in meta:
        low, high = meta["range"]
        return low, high, bool(meta.get("exclusive", False))
    for pattern, low, high, exclusive in _NAME_RULES:
        if re.match(pattern, f.name):
            return (low, high, exclusive) if (low is not None or high is not None) else None
    return None


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, (list, tuple)):
        return [float(v) for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return []


def check_node(prefix: str, schema: type, node: Any) -> list[str]:
    """Range problems of one config node against its dataclass schema."""
    problems: list[str] = []
    if not dataclasses.is_dataclass(schema) or node is None:
        return problems
    for f in dataclasses.fields(schema):
        if f.name not in node:
            continue
        raw = node[f.name]
        if OmegaConf.is_config(raw):
            raw = OmegaConf.to_container(raw, resolve=True)
        choices = _CHOICES.get((prefix, f.name))
        if choices is not None and raw not in choices:
            problems.append(f"{prefix}.{f.name} must be one of {', '.join(choices)} (got {raw!r})")
            continue
        rng = _range_of(f)
        for x in _numbers(raw):
            if not math.isfinite(x):
                problems.append(f"{prefix}.{f.name} must be a finite number (got {_fmt(x)})")
                break
            if rng is None:
                continue
            low, high, exclusive = rng
            if low is not None and (x <= low if exclusive else x < low):
                problems.append(
                    f"{prefix}.{f.name} must be {'>' if exclusive else '>='} {_fmt(low)} (got {_fmt(x)})"
                )
                break
            if high is not None and x > high:
                problems.append(f"{prefix}.{f.name} must be <= {_fmt(high)} (got {_fmt(x)})")
                break
    return problems


def _relations(cfg: DictConfig) -> list[str]:
    """Relations between groups that hold for every algorithm."""
    problems: list[str] = []
    algo, replay, env = cfg.get("algo"), cfg.get("replay"), cfg.get("env")
    if algo is None:
        return problems
    off_policy = "learning_starts_env_steps" in algo and "batch_size" in algo
    if (
        off_policy
        and replay is not None
        and "capacity" in replay
        and int(algo.batch_size) > int(replay.capacity)
    ):
        problems.append(
            f"algo.batch_size ({algo.batch_size}) must not exceed replay.capacity ({replay.capacity})"
        )
    if "num_steps" in algo and "num_minibatches" in algo and env is not None and "num_envs" in env:
        batch = int(algo.num_steps) * int(env.num_envs)
        if 0 < batch < int(algo.num_minibatches):
            problems.append(
                f"algo.num_minibatches ({algo.num_minibatches}) must not exceed algo.num_steps x env.num_envs "
                f"({algo.num_steps} x {env.num_envs} = {batch})"
            )
    dist, trainer = cfg.get("distributed"), cfg.get("trainer")
    if (
        dist is not None
        and str(dist.get("backend", "local")) != "local"
        and trainer is not None
        and trainer.get("total_episodes") is not None
    ):
        problems.append(
            f"trainer.total_episodes is not supported with distributed={dist.backend} (actors finish "
            "episodes asynchronously); stop at trainer.total_env_steps or trainer.total_learner_updates"
        )
    for low, high in (("log_std_min", "log_std_max"), ("v_min", "v_max")):
        if low in algo and high in algo and float(algo[low]) >= float(algo[high]):
            problems.append(f"algo.{low} ({algo[low]}) must be below algo.{high} ({algo[high]})")
    return problems


def _schemas(cfg: DictConfig) -> dict[str, type]:
    from d2rl import config as base
    from d2rl.registry import get_algorithm, get_network

    out: dict[str, type] = {
        "trainer": base.TrainerConfig,
        "env": base.EnvConfig,
        "replay": base.ReplayConfig,
    }
    if cfg.get("algo") is not None and cfg.algo.get("name"):
        out["algo"] = get_algorithm(str(cfg.algo.name)).config_class
    if cfg.get("network") is not None and cfg.network.get("name"):
        out["network"] = get_network(str(cfg.network.name)).config_class
    return out


def problems(cfg: DictConfig) -> list[str]:
    """Every range and relation problem of a composed training config."""
    found: list[str] = []
    schemas = _schemas(cfg)
    for prefix, schema in schemas.items():
        found += check_node(prefix, schema, cfg.get(prefix))
    found += _relations(cfg)
    for prefix, schema in schemas.items():
        node = cfg.get(prefix)
        if node is None or not hasattr(schema, "validate"):
            continue
        try:
            obj: Any = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), node))
        except Exception:  # the schema itself will refuse it with its own message
            continue
        found += [str(p) for p in (obj.validate(cfg) or [])]
    return found


def validate(cfg: DictConfig) -> None:
    """Raise one ``D2RLError`` line listing the config's problems (none: return)."""
    found = problems(cfg)
    if found:
        more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
        raise D2RLError("; ".join(found[:3]) + more)
