"""Checkpoints: written atomically (temp file + rename), read with ``torch.load(weights_only=True)``
so loading never unpickles arbitrary objects. Only tensors, numbers, strings and containers."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from d2rl.errors import D2RLError

FORMAT_KEY = "d2rl_checkpoint"
FORMAT_VERSION = 1
LAST = "last.pt"


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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(ckpt_dir: Path, state: dict[str, Any], env_steps: int) -> Path:
    """Write ``step_<env_steps>.pt`` then point ``last.pt`` at it; an existing file is never
    overwritten in place, so a crash mid-write leaves the previous checkpoints intact."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state = {FORMAT_KEY: FORMAT_VERSION, **state}
    path = ckpt_dir / f"step_{env_steps:012d}.pt"
    _atomic_torch_save(state, path)
    tmp_link = ckpt_dir / f".{LAST}.{os.getpid()}.tmp"
    tmp_link.unlink(missing_ok=True)
    try:
        os.link(path, tmp_link)  # a hard link: `last.pt` is the same bytes, no second write
    except OSError:
        _atomic_torch_save(state, tmp_link)
    os.replace(tmp_link, ckpt_dir / LAST)
    return path


def resolve(path: str | os.PathLike[str]) -> Path:
    """A checkpoint file, or a run dir (-> its ``checkpoints/last.pt``)."""
    p = Path(path).expanduser()
    if p.is_dir():
        for cand in (p / "checkpoints" / LAST, p / LAST):
            if cand.is_file():
                return cand
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
    return state
