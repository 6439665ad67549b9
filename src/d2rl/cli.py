"""Console entry points: compose the config with Hydra, call train()/evaluate, map errors to exit codes."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import errno
import logging
import re
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from d2rl.config import register_configs
from d2rl.errors import D2RLError

log = logging.getLogger("d2rl")

EXIT_USER_ERROR = 2  # bad input: config, checkpoint, env, missing package, unwritable output
EXIT_DIVERGED = 3  # NaN/inf in training (trainer.nan_policy=stop); the last good checkpoint is kept
# 128 + signal: stopped by SIGINT (130) or SIGTERM (143) after writing a checkpoint
# Overrides that may accompany resume= (they do not change what is trained).
# distributed.*: a resumed Ape-X/SEED run may change its actor count, resources or Ray address
_RESUME_OK = ("resume=", "trainer.progress_bar=", "distributed.", "+distributed.")


def _fail(msg: str) -> None:
    msg = " ".join(str(msg).split())  # one line, whatever a library put in the message
    if len(msg) > 360:
        msg = msg[:357] + "..."
    print(f"d2rl: error: {msg}", file=sys.stderr)
    raise SystemExit(EXIT_USER_ERROR)


def nearest(value: str, options: Any, what: str = "") -> str:
    """``did you mean `x`?`` for a near miss; the options themselves when few; else a pointer."""
    options = sorted({str(o) for o in options})
    close = difflib.get_close_matches(value, options, n=2, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(f"`{what}{c}`" for c in close) + "?"
    if len(options) <= 12:
        return f"choose from {', '.join(options)}"
    return f"{len(options)} options, see `d2rl-list`"


def config_error_line(e: BaseException) -> str | None:
    """One line for a config error that Hydra or OmegaConf raised while composing, or None."""
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

    if not isinstance(e, (HydraException, OmegaConfBaseException)):
        return None
    cause = e.__cause__ if isinstance(e.__cause__, OmegaConfBaseException) else e
    text = str(e).strip()
    if isinstance(e, MissingConfigException):
        m = re.search(r"Could not find '([^']+)/([^'/]+)'", text)
        if m:
            group, option = m.groups()
            opts = re.findall(r"^\t(\S+)$", text.split("Available options", 1)[-1], flags=re.M)
            if not opts:
                opts = group_options(group)
            return f"unknown {group} option '{option}'; {nearest(option, opts, f'{group}=')}"
        m = re.search(r"Cannot find primary config '([^']+)'", text)
        return text.splitlines()[0] if m is None else f"config '{m.group(1)}' not found"
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
        full_key = str(getattr(cause, "full_key", "") or "")
        key = str(getattr(cause, "key", "") or full_key.rsplit(".", 1)[-1])
        m = re.search(r"Key '([^']+)' not in '([^']+)'", str(cause))
        if m:
            key = m.group(1)
        parent = full_key.rsplit(".", 1)[0] if "." in full_key else ""
        schema = getattr(cause, "object_type", None)
        names = [f.name for f in dataclasses.fields(schema)] if dataclasses.is_dataclass(schema) else []
        where = f"{parent}." if parent else ""
        hint = nearest(key, names, where) if names else "see `d2rl --help` for the keys"
        return f"unknown config key '{full_key or key}'; {hint}"
    if isinstance(cause, ValidationError):
        full_key = str(getattr(cause, "full_key", "") or "")
        first = str(cause).strip().splitlines()[0]
        m = re.search(r"Value '(.*)' of type '(\w+)' could not be converted to (\w+)", first)
        if m:
            value, _, target = m.groups()
            kinds = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false"}
            kind = kinds.get(target, target)
            return f"{full_key}={value}: expected {kind}"
        m = re.search(r"Value '(.*)' is not a valid bool", first)
        if m:
            return f"{full_key}={m.group(1)}: expected true or false"
        return f"{full_key}: {first}" if full_key else first
    if isinstance(e, OverrideParseException):
        return f"cannot parse override: {text.splitlines()[0]}"
    lines = [ln for ln in text.splitlines() if ln.strip() and "To append to your config" not in ln]
    return lines[0] if lines else type(e).__name__


# can't write the run folder: permission, read-only file system, no space, quota, file size limit
_WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def os_error_line(e: BaseException) -> str | None:
    """One line for an error writing the run folder (or None for any other error)."""
    if not isinstance(e, OSError) or e.errno not in _WRITE_ERRNOS:
        return None
    where = f" '{e.filename}'" if e.filename else ""
    return (
        f"cannot write{where}: {e.strerror or e}; pick a writable output_dir with free space "
        "(nothing was written that a resume would take for a checkpoint)"
    )


def _report_config_errors() -> None:
    """Route Hydra's error printing through ``config_error_line`` (one ``d2rl: error:`` line, exit 2);
    ``HYDRA_FULL_ERROR=1`` keeps Hydra's full traceback."""
    import os

    import hydra._internal.utils as hydra_utils

    original = hydra_utils.run_and_report
    if os.environ.get("HYDRA_FULL_ERROR") == "1" or getattr(original, "d2rl", False):
        return

    def run_and_report(func: Any) -> Any:
        try:
            return func()
        except Exception as e:
            line = config_error_line(e) or os_error_line(e)
            if line is None:
                err = e

                def reraise() -> Any:
                    raise err

                return original(reraise)
            _fail(line)

    run_and_report.d2rl = True  # type: ignore[attr-defined]
    hydra_utils.run_and_report = run_and_report


def _setup() -> None:
    register_configs()
    from d2rl.registry import register_config_nodes

    register_config_nodes()


def _resume_argv(argv: list[str]) -> list[str]:
    """``resume=<run dir>`` continues in that run dir: point Hydra's run dir at it, keep its .hydra."""
    args = [a for a in argv if a.startswith("resume=")]
    if not args:
        return argv
    from d2rl import checkpoint

    target = args[-1].split("=", 1)[1]
    try:
        ckpt = checkpoint.resolve(target)
    except D2RLError as e:
        _fail(str(e))
    run_dir = ckpt.parent.parent  # <run dir>/checkpoints/<file>
    return [*argv, f"hydra.run.dir={run_dir}", "hydra.output_subdir=null"]


def _output_dir_argv(argv: list[str]) -> list[str]:
    """``output_dir=<dir>`` (single run): Hydra's own files (.hydra/, log) go to the same folder."""
    if any(a in ("-m", "--multirun") for a in argv) or any(a.startswith("hydra.run.dir=") for a in argv):
        return argv
    dirs = [a.split("=", 1)[1] for a in argv if a.startswith("output_dir=")]
    return [*argv, f"hydra.run.dir={dirs[-1]}"] if dirs and dirs[-1] not in ("", "null") else argv


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def _train_app(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    try:
        if cfg.get("resume"):
            extra = [o for o in HydraConfig.get().overrides.task if not o.startswith(_RESUME_OK)]
            if extra:
                raise D2RLError(
                    f"resume continues a run with its saved config; drop the other overrides: {' '.join(extra)}"
                )
        else:
            from d2rl.validation import validate

            validate(cfg)  # before importing torch & co: a bad value answers in about a second
        from d2rl.train import train

        result = train(cfg)
    except D2RLError as e:
        from hydra.types import RunMode

        if getattr(e, "exit_code", EXIT_USER_ERROR) == EXIT_DIVERGED:  # nan_guard.NonFiniteError
            print(f"d2rl: error: {e}", file=sys.stderr)
            raise SystemExit(EXIT_DIVERGED) from None

        if HydraConfig.get().mode == RunMode.MULTIRUN:
            # one bad job of a sweep: the sweeper records it as failed (Optuna: a failed trial,
            # tolerated up to hydra.sweeper.max_failure_rate) and the sweep summary marks it
            print(f"d2rl: error: {e}", file=sys.stderr)
            raise
        _fail(str(e))
    except Exception as e:
        from d2rl.core import StopTraining

        if os_error_line(e) is not None:
            _fail(str(os_error_line(e)))
        if not isinstance(e, StopTraining):
            raise
        import signal

        sig = signal.Signals[str(e)] if str(e) in signal.Signals.__members__ else signal.SIGTERM
        print(
            f"d2rl: stopped by {sig.name}; a checkpoint was written, continue with "
            f"`d2rl resume={HydraConfig.get().runtime.output_dir}`",
            file=sys.stderr,
        )
        raise SystemExit(128 + int(sig)) from None
    return float(result["eval/return_mean"])


def yaml_options(group: str) -> set[str]:
    """Names of the YAML configs of ``group`` in d2rl's conf/ and in every plugin's search path."""
    from d2rl import registry

    return set(registry.yaml_files(group))


def _check_choices(argv: list[str]) -> None:
    """``algo=x``/``network=x``/``env=x`` naming nothing known: one line, before Hydra's multi-line report."""
    from d2rl import registry

    known = {
        "algo": set(registry.algorithms().entries) | set(registry.algorithms().broken),
        "network": set(registry.networks().entries) | set(registry.networks().broken),
        "env": set(),
        "experiment": set(),
    }
    for group in known:
        known[group] |= yaml_options(group)
    broken = {"algo": registry.algorithms().broken, "network": registry.networks().broken}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and value in broken.get(key, {}):  # a plugin that failed to load: say which and why
            _fail(broken[key][value])
        if (
            sep
            and key in known
            and "," not in value
            and value not in known[key]
            and not value.startswith("$")
        ):
            what = {"algo": "algorithm", "network": "network", "env": "env config", "experiment": "experiment"}[key]
            hint = " (any gymnasium id: env=gym env.id=<id>)" if key == "env" else ""
            _fail(f"unknown {what} '{value}'; {nearest(value, known[key], f'{key}=')}{hint}")


HELP_GROUPS = ("algo", "env", "network", "replay", "distributed", "experiment", "tuned", "hpo")


def group_options(group: str) -> list[str]:
    """Options of a config group: registered (ConfigStore) and YAML files, d2rl's and plugins'."""
    from hydra.core.config_store import ConfigStore

    from d2rl import registry

    try:
        stored = {n.removesuffix(".yaml") for n in ConfigStore.instance().list(group)}
    except OSError:
        stored = set()
    return sorted(stored | set(registry.yaml_files(group)))


def fast_help(overrides: list[str]) -> str:
    """``d2rl --help``: groups, options and the composed config, without Hydra's help, which
    composes every group's every option (~10 s here)."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("d2rl.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    lines = [
        "d2rl: train a reinforcement-learning agent (a Hydra app).",
        "Usage: d2rl [group=option ...] [key=value ...]    d2rl -m key=a,b (sweep)    d2rl --cfg job",
        "Hydra's own flags: d2rl --hydra-help. Registered implementations: d2rl-list. Guide: README.md.",
        "",
        "== Configuration groups ==",
        *(f"{g}: {', '.join(group_options(g))}" for g in HELP_GROUPS),
        f"hydra/launcher: {', '.join(group_options('hydra/launcher'))}",
        "",
        "== Config ==",
        "Override anything below (algo.lr=1e-3, trainer.total_env_steps=50000, ...)",
        "",
        OmegaConf.to_yaml(cfg),
    ]
    return "\n".join(lines)


def main() -> None:
    """``d2rl [overrides]``: train (``-m`` for sweeps)."""
    _setup()
    args = sys.argv[1:]
    if ("--help" in args or "-h" in args) and "--hydra-help" not in args:
        try:
            text = fast_help([a for a in args if a not in ("--help", "-h")])
        except Exception as e:  # a bad override: the same one-line error as a run would give
            _fail(str(e).strip().splitlines()[0])
        with contextlib.suppress(BrokenPipeError):  # `d2rl --help | head`
            print(text)
        return
    _check_choices(args)
    _report_config_errors()
    sys.argv = [sys.argv[0], *_output_dir_argv(_resume_argv(sys.argv[1:]))]
    _train_app()


def list_main() -> None:
    """``d2rl-list``: registered algorithms, networks and env suites, with the package providing each."""
    from d2rl import registry

    print("algorithms:")
    for name, a in sorted(registry.algorithms().entries.items()):
        print(
            f"  {name:<16} {a.provider:<20} actions: {', '.join(a.spec.action_spaces):<22} {a.spec.description}"
        )
    print("networks:")
    for name, n in sorted(registry.networks().entries.items()):
        print(f"  {name:<16} {n.provider:<20} {n.spec.description}")
    print("env suites:")
    for name, e in sorted(registry.env_suites().entries.items()):
        print(f"  {name:<16} {e.provider:<20} {e.spec.description}")
    print("env configs (env=<name>):", ", ".join(sorted(yaml_options("env"))))
    experiments = yaml_options("experiment")
    if experiments:
        print("experiments (experiment=<name>, a published protocol):", ", ".join(sorted(experiments)))
    presets = yaml_options("algo")
    if presets:
        print("algo presets (algo=<name>):", ", ".join(sorted(presets)))
    broken = {**registry.algorithms().broken, **registry.networks().broken, **registry.env_suites().broken}
    if broken:
        print("broken plugins:")
        for msg in broken.values():
            print(f"  {msg}")


@hydra.main(config_path="conf", config_name="eval", version_base="1.3")
def _eval_app(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg, "checkpoint"):
        _fail("d2rl-eval needs checkpoint=<run dir or checkpoint file>")
    try:
        from d2rl.config import EvalConfig
        from d2rl.validation import check_node

        found = check_node("", EvalConfig, cfg)
        if found:
            raise D2RLError("; ".join(p.lstrip(".") for p in found[:3]))
        evaluate_checkpoint(cfg)
    except D2RLError as e:
        _fail(str(e))


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """``d2rl-eval``: returns of ``episodes`` episodes (reproducible for a given ``seed``), and on
    request a window (``render``), an mp4 (``video``) and Grad-CAM saliency (``gradcam.enabled``)."""
    import numpy as np
    import torch

    from d2rl import checkpoint
    from d2rl.evaluation import evaluate, record_video

    path = checkpoint.resolve(cfg.checkpoint)
    state = checkpoint.load(path)
    if "policy" not in state:
        raise D2RLError(f"'{path}' predates d2rl's Policy/Learner checkpoints (no 'policy'); retrain it")
    from d2rl.train import load_policy

    seed = int(cfg.seed)
    agent, run_cfg = load_policy(state, seed)
    env_steps = int(state["loop"]["env_steps"])
    torch.set_num_threads(int(run_cfg.trainer.torch_threads))
    torch.manual_seed(seed)  # stochastic evaluation (deterministic=false) is reproducible too
    np.random.seed(seed)
    run_dir = path.parent.parent
    if cfg.render:
        returns = _render_episodes(agent, run_cfg, cfg)
    else:
        returns = evaluate(
            agent, run_cfg.env, int(cfg.episodes), seed, bool(cfg.deterministic), int(cfg.num_envs or 16)
        )
    out: dict[str, Any] = {
        "checkpoint": str(path),
        "env_steps": env_steps,
        "episodes": len(returns),
        "returns": [float(r) for r in returns],
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
    }
    print(
        f"{run_cfg.algo.name} on {run_cfg.env.id} @ {out['env_steps']} env steps: "
        f"return {out['return_mean']:.2f} +- {out['return_std']:.2f} over {len(returns)} episodes"
    )
    if cfg.video:
        video_dir = Path(cfg.video_dir) if cfg.video_dir else run_dir / "videos"
        video, _ = record_video(
            agent, run_cfg.env, video_dir, seed, bool(cfg.deterministic), view=str(cfg.video_view)
        )
        out["video"] = str(video)
        print(f"video: {out['video']}")
    if cfg.gradcam.enabled:
        from d2rl.gradcam import record_gradcam

        g = cfg.gradcam
        video, pngs = record_gradcam(
            agent,
            run_cfg.env,
            Path(cfg.video_dir) if cfg.video_dir else run_dir / "gradcam",
            seed,
            layers=list(g.layers),
            deterministic=bool(cfg.deterministic),
            view=str(cfg.video_view),
            pngs=int(g.pngs),
            alpha=float(g.alpha),
            action_index=g.action_index,
        )
        out["gradcam"] = {"video": str(video), "pngs": [str(p) for p in pngs]}
        print(f"gradcam: {video} and {len(pngs)} PNG frames in {video.parent}")
    return out


def _render_episodes(agent: Any, run_cfg: DictConfig, cfg: DictConfig) -> Any:
    """``render=true``: play the episodes one by one in a window; without a display, say so in one
    line and evaluate as without ``render``."""
    import numpy as np

    from d2rl.evaluation import evaluate, play_episode, render_fps
    from d2rl.video import Window, display_available

    seed, episodes = int(cfg.seed), int(cfg.episodes)
    if not display_available():
        print(
            "d2rl-eval: render=true: no display ($DISPLAY is not set), so no window opens; "
            "evaluating without it (video=true records an mp4)",
            file=sys.stderr,
        )
        return evaluate(agent, run_cfg.env, episodes, seed, bool(cfg.deterministic), int(cfg.num_envs or 16))
    window = Window(f"d2rl: {run_cfg.algo.name} on {run_cfg.env.id}", render_fps(run_cfg.env))
    returns = []
    try:
        for i in range(episodes):
            ret, _ = play_episode(
                agent,
                run_cfg.env,
                seed + 1000 * i,
                bool(cfg.deterministic),
                view=str(cfg.video_view),
                visit=lambda frame, *_: window.show(frame),
            )
            returns.append(ret)
    finally:
        window.close()
    return np.asarray(returns)


def eval_main() -> None:
    """``d2rl-eval checkpoint=<run dir or file> episodes=10 seed=S [video=true] [render=true] [gradcam=true]``."""
    register_configs()
    _report_config_errors()
    # `gradcam=true` is short for gradcam.enabled=true (gradcam.layers=[...] etc. sit beside it)
    sys.argv = [("gradcam.enabled=" + a[8:]) if a.startswith("gradcam=") else a for a in sys.argv]
    _eval_app()
