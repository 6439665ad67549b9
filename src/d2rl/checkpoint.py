"""Checkpoints: written atomically (temp file + fsync + rename, then the ``last.pt`` pointer), read
with ``torch.load(weights_only=True)`` so loading never unpickles arbitrary objects (a crafted file
that would run code is refused). Only tensors, numbers, strings and containers.

Besides the training state, a checkpoint holds what an *exact* resume needs: every RNG (torch,
numpy, Python, numpy Generators of the Loop and replay) and, where the suite allows it, the
envs' own state (``env_state``) so a resumed run continues the very episodes it stopped in.
"""

from __future__ import annotations

import collections
import logging
import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from d2rl.errors import D2RLError

FORMAT_KEY = "d2rl_checkpoint"
FORMAT_VERSION = 1
LAST = "last.pt"
BEST = "best.pt"
REQUIRED_KEYS = ("algo", "config", "learner", "loop")
log = logging.getLogger(__name__)
_STEP_FILE = re.compile(r"^step_(\d{12})\.pt$")


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def _atomic_torch_save(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        cause = e.__cause__ or e.__context__
        if isinstance(e, RuntimeError) and isinstance(cause, OSError):
            raise cause from e  # torch wraps a failed write (disk full, file size limit)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(d: Path) -> None:
    """Make a rename durable (POSIX: the directory entry is data of the directory)."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _point(ckpt_dir: Path, name: str, target: Path) -> None:
    """Atomically make ``ckpt_dir/name`` the same bytes as ``target`` (a hard link, or a copy)."""
    tmp_link = ckpt_dir / f".{name}.{os.getpid()}.tmp"
    tmp_link.unlink(missing_ok=True)
    try:
        os.link(target, tmp_link)  # a hard link: the same bytes, no second write
    except OSError:
        import shutil

        try:
            shutil.copyfile(target, tmp_link)
            with open(tmp_link, "rb+") as f:
                os.fsync(f.fileno())
        except BaseException:
            tmp_link.unlink(missing_ok=True)
            raise
    os.replace(tmp_link, ckpt_dir / name)
    _fsync_dir(ckpt_dir)


def step_files(ckpt_dir: Path) -> list[Path]:
    """``step_*.pt`` checkpoints in ``ckpt_dir``, oldest first."""
    if not ckpt_dir.is_dir():
        return []
    return sorted(p for p in ckpt_dir.iterdir() if _STEP_FILE.match(p.name))


def prune(ckpt_dir: Path, keep: int) -> list[Path]:
    """Keep the newest ``keep`` step checkpoints (0: all) and their replay files; ``last.pt`` and
    ``best.pt`` are hard links to their own bytes, so they survive (a pruned step's replay file does
    not: resuming from such a ``best.pt`` starts with an empty replay). Returns the removed files."""
    if keep <= 0:
        return []
    old = step_files(ckpt_dir)[:-keep]
    for p in old:
        p.unlink(missing_ok=True)
        (ckpt_dir / p.name.replace("step_", "replay_", 1)).unlink(missing_ok=True)
    for stale in ckpt_dir.glob(".*.tmp"):  # temp files of a writer killed mid-write
        if not _pid_alive(stale):
            stale.unlink(missing_ok=True)
    return old


def _pid_alive(tmp: Path) -> bool:
    """Temp names carry their writer's pid (``.<name>.<pid>.<...>tmp``): is that writer running?"""
    pid = next((int(t) for t in tmp.name.split(".") if t.isdigit()), None)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def save(
    ckpt_dir: Path,
    state: dict[str, Any],
    env_steps: int,
    keep: int = 0,
    best: bool = False,
    separate_storage: bool = False,
) -> Path:
    """Write ``step_<env_steps>.pt``, then point ``last.pt`` (and, with ``best``, ``best.pt``) at it,
    then drop all but the newest ``keep`` step files (0 keeps all). An existing file is never
    overwritten in place and ``last.pt`` moves last, so a crash at any moment leaves the previous
    complete checkpoint loadable."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state = {FORMAT_KEY: FORMAT_VERSION, **state}
    path = ckpt_dir / f"step_{env_steps:012d}.pt"
    replay = None
    if separate_storage and state.get("storage"):
        # the replay goes to its own file, written before the step file that names it and pruned
        # with it: the step file (what evaluation, load_from and d2rl-eval read) stays small
        replay = ckpt_dir / f"replay_{env_steps:012d}.pt"
        _write(replay, {FORMAT_KEY: FORMAT_VERSION, "storage": state["storage"], "env_steps": env_steps})
        state = {**state, "storage": {}, "storage_file": replay.name}
    _write(path, state)
    if best:
        _point(ckpt_dir, BEST, path)
    _point(ckpt_dir, LAST, path)
    prune(ckpt_dir, keep)
    return path


def _write(path: Path, obj: dict[str, Any]) -> None:
    try:
        _atomic_torch_save(obj, path)
    except OSError as e:
        raise D2RLError(
            f"could not write checkpoint {path}: {e.strerror or e}; free space or pick another output_dir "
            "(the previous checkpoints are intact)"
        ) from e


def load_storage(state: dict[str, Any], path: str | os.PathLike[str]) -> dict[str, Any]:
    """The replay of a checkpoint written with ``replay.separate_file=true``, read (safely) from the
    file it names beside ``path``; inline storage is returned as it is. A replay file that is gone
    (pruned with its step file, while ``best.pt`` still links the step's bytes) gives ``{}`` with a
    warning: the run resumes with an empty replay."""
    name = state.get("storage_file")
    if not name:
        return state.get("storage") or {}
    replay = resolve(path).parent / str(name)
    if not replay.is_file():
        log.warning(
            "%s is gone (pruned by trainer.keep_checkpoints); resuming with an empty replay", replay
        )
        return {}
    try:
        data = torch.load(replay, map_location="cpu", weights_only=True)
    except Exception as e:
        raise D2RLError(f"'{replay}' is not a readable d2rl replay file ({str(e).splitlines()[0][:160]})") from e
    if not isinstance(data, dict) or data.get(FORMAT_KEY) != FORMAT_VERSION or "storage" not in data:
        raise D2RLError(f"'{replay}' is not a d2rl replay file")
    return data["storage"]


def resolve(path: str | os.PathLike[str]) -> Path:
    """A checkpoint file, or a run dir (-> its ``checkpoints/last.pt``)."""
    p = Path(path).expanduser()
    if p.is_dir():
        for cand in (p / "checkpoints" / LAST, p / LAST):
            if cand.is_file():
                return cand
        # killed between writing a step file and moving `last.pt`: the newest complete step file
        for d in (p / "checkpoints", p):
            steps = step_files(d)
            if steps:
                return steps[-1]
        raise D2RLError(f"no checkpoint in '{p}': expected {p / 'checkpoints' / LAST}")
    if not p.exists():
        raise D2RLError(
            f"checkpoint '{p}' does not exist; pass a run dir or a .pt file under its checkpoints/"
        )
    return p


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a d2rl checkpoint safely; anything else is refused with a one-line error."""
    p = resolve(path)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refusals and garbage raise many types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise D2RLError(f"'{p}' is not a readable d2rl checkpoint ({first[:160]})") from e
    if not isinstance(state, dict) or state.get(FORMAT_KEY) != FORMAT_VERSION:
        raise D2RLError(
            f"'{p}' is not a d2rl checkpoint (no '{FORMAT_KEY}' marker of version {FORMAT_VERSION})"
        )
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise D2RLError(f"'{p}' is an incomplete d2rl checkpoint (no {', '.join(missing)}); use another one")
    return state


# -- exact resume: numpy Generators and env state --------------------------------------------


def generator_state(g: np.random.Generator) -> dict[str, Any]:
    return dict(g.bit_generator.state)


def set_generator_state(g: np.random.Generator, state: dict[str, Any]) -> None:
    g.bit_generator.state = state


# Envs whose whole state is plain attributes (numbers, arrays, Generators) of the env and its
# gymnasium wrappers: saved and restored exactly. ALE games (the atari suite's ``gymnasium``
# backend) add the emulator: ``cloneState(include_rng=True)`` serialized to bytes, so sticky
# actions continue identically. Others resume with fresh episodes.
EXACT_ENV_MODULES = (
    "gymnasium.envs.classic_control.",
    "gymnasium.envs.toy_text.",
    "d2rl.envs.memory",
    "ale_py.env",
)
EXACT_WRAPPER_MODULES = ("gymnasium.wrappers.", "gymnasium.core", "d2rl.envs.memory", "d2rl.envs.atari")
# vector wrappers over a SyncVectorEnv whose state is plain attributes (Atari's life/return tracking)
EXACT_VECTOR_WRAPPER_MODULES = ("d2rl.envs.atari",)
_SKIP_ATTRS = {"_saved_kwargs", "spec", "metadata", "render_mode", "_cached_spec"}


def _ale_interface(v: Any) -> bool:
    return type(v).__name__ == "ALEInterface" and type(v).__module__.startswith("ale_py")


def _plain(v: Any) -> bool:
    if v is None or isinstance(v, (bool, int, float, str, np.generic)):
        return True
    if isinstance(v, np.ndarray):
        return v.dtype != object
    if isinstance(v, (tuple, list, collections.deque)):
        return all(_plain(x) for x in v)
    return False


def _encode(v: Any) -> Any:
    if isinstance(v, np.random.Generator):
        return {"__generator__": generator_state(v)}
    if isinstance(v, np.ndarray):
        return {"__array__": torch.from_numpy(v.copy()), "dtype": str(v.dtype)}
    if isinstance(v, np.generic):
        return {"__scalar__": v.item(), "dtype": str(v.dtype)}
    if isinstance(v, collections.deque):
        return {"__deque__": [_encode(x) for x in v], "maxlen": v.maxlen}
    if isinstance(v, tuple):
        return {"__tuple__": [_encode(x) for x in v]}
    if isinstance(v, list):
        return [_encode(x) for x in v]
    return v


def _decode(v: Any, current: Any) -> Any:
    if isinstance(v, dict):
        if "__generator__" in v:
            g = current if isinstance(current, np.random.Generator) else np.random.default_rng()
            set_generator_state(g, v["__generator__"])
            return g
        if "__array__" in v:
            return v["__array__"].numpy().astype(v["dtype"], copy=True)
        if "__scalar__" in v:
            return np.dtype(v["dtype"]).type(v["__scalar__"])
        if "__deque__" in v:
            return collections.deque((_decode(x, None) for x in v["__deque__"]), maxlen=v["maxlen"])
        if "__tuple__" in v:
            return tuple(_decode(x, None) for x in v["__tuple__"])
    if isinstance(v, list):
        return [_decode(x, None) for x in v]
    return v


def _layers(env: Any) -> list[Any]:
    out: list[Any] = []
    while env is not None and len(out) < 64:
        out.append(env)
        env = getattr(env, "env", None)
    return out


def _exact_env(env: Any) -> bool:
    *wrappers, base = _layers(env)
    return type(base).__module__.startswith(EXACT_ENV_MODULES) and all(
        type(w).__module__.startswith(EXACT_WRAPPER_MODULES) for w in wrappers
    )


def _object_state(obj: Any) -> dict[str, Any]:
    out = {
        k: _encode(v)
        for k, v in vars(obj).items()
        if k not in _SKIP_ATTRS and (isinstance(v, np.random.Generator) or _plain(v))
    }
    ale = vars(obj).get("ale")
    if type(obj).__module__.startswith("ale_py") and _ale_interface(ale):  # the env that owns it
        raw = ale.cloneState(include_rng=True).serialize()
        out["ale"] = {"__ale_state__": torch.frombuffer(bytearray(raw), dtype=torch.uint8)}
    return out


def _set_object_state(obj: Any, attrs: dict[str, Any]) -> None:
    for k, v in attrs.items():
        if isinstance(v, dict) and "__ale_state__" in v:
            import ale_py

            getattr(obj, k).restoreState(ale_py.ALEState(v["__ale_state__"].numpy().tobytes()))
        else:
            setattr(obj, k, _decode(v, getattr(obj, k, None)))


def _vector_layers(envs: Any) -> tuple[list[Any], Any]:
    """(the exact vector wrappers, outermost first; the env under them)."""
    wrappers = []
    while type(envs).__module__.startswith(EXACT_VECTOR_WRAPPER_MODULES) and hasattr(envs, "env"):
        wrappers.append(envs)
        envs = envs.env
    return wrappers, envs


def _exact_vector(envs: Any) -> tuple[list[Any], list[Any]] | None:
    """(exact vector wrappers, sub-envs) if every layer's state can be saved exactly, else None:
    async vector envs, ale-py's native vector env, Box2D, MuJoCo, Procgen."""
    wrappers, base = _vector_layers(envs)
    subs = getattr(base, "envs", None)
    if type(base).__name__ != "SyncVectorEnv" or not subs or not all(_exact_env(e) for e in subs):
        return None
    return wrappers, list(subs)


def env_state(envs: Any) -> dict[str, Any] | None:
    """The state of every env of a synchronous vector env (and of the vector wrappers d2rl puts
    over it), or None where the suite's state is not plain data (the resumed run then starts
    fresh episodes)."""
    exact = _exact_vector(envs)
    if exact is None:
        return None
    wrappers, subs = exact
    state: dict[str, Any] = {
        "envs": [[_object_state(layer) for layer in _layers(e)] for e in subs],
        "action_space": generator_state(envs.action_space.np_random),
    }
    if wrappers:
        state["vector_wrappers"] = [_object_state(w) for w in wrappers]
    return state


def set_env_state(envs: Any, state: dict[str, Any] | None) -> bool:
    """Restore ``env_state(envs)``; False (nothing changed) if it does not fit these envs."""
    exact = _exact_vector(envs)
    if not state or exact is None or len(state["envs"]) != len(exact[1]):
        return False
    wrappers, subs = exact
    if len(state.get("vector_wrappers", [])) != len(wrappers):
        return False
    if any(len(_layers(e)) != len(s) for e, s in zip(subs, state["envs"], strict=True)):
        return False
    for e, layers in zip(subs, state["envs"], strict=True):
        for layer, attrs in zip(_layers(e), layers, strict=True):
            _set_object_state(layer, attrs)
    for w, attrs in zip(wrappers, state.get("vector_wrappers", []), strict=True):
        _set_object_state(w, attrs)
    set_generator_state(envs.action_space.np_random, state["action_space"])
    return True
