import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from d2rl import checkpoint
from d2rl.errors import D2RLError


def _full(**extra: Any) -> dict[str, Any]:
    """A checkpoint with the keys load() requires (checkpoint.REQUIRED_KEYS), plus ``extra``."""
    return {**{k: {} for k in checkpoint.REQUIRED_KEYS}, **extra}

def test_save_then_load_roundtrip_and_last_points_to_newest(tmp_path: Path) -> None:
    d = tmp_path / "checkpoints"
    checkpoint.save(d, _full(agent={"w": torch.ones(2)}, counters={"env_steps": 1}), 1)
    p2 = checkpoint.save(d, _full(agent={"w": torch.zeros(2)}, counters={"env_steps": 2}), 2)
    assert sorted(f.name for f in d.iterdir()) == ["last.pt", "step_000000000001.pt", "step_000000000002.pt"]
    state = checkpoint.load(tmp_path)  # a run dir resolves to checkpoints/last.pt
    assert state["counters"]["env_steps"] == 2
    assert torch.equal(state["agent"]["w"], torch.zeros(2))
    assert os.path.samefile(d / "last.pt", p2)
    assert checkpoint.load(d / "step_000000000001.pt")["counters"]["env_steps"] == 1


def test_rng_state_roundtrips_through_a_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    np.random.seed(0)
    checkpoint.save(tmp_path, _full(rng=checkpoint.rng_state()), 0)
    a = (torch.rand(3), np.random.rand(3))
    checkpoint.set_rng_state(checkpoint.load(tmp_path / "last.pt")["rng"])
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_failed_write_keeps_previous_checkpoints(tmp_path: Path) -> None:
    checkpoint.save(tmp_path, _full(x=torch.ones(1)), 1)

    class Unsaveable:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        checkpoint.save(tmp_path, _full(x=Unsaveable()), 2)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["last.pt", "step_000000000001.pt"]
    assert torch.equal(checkpoint.load(tmp_path / "last.pt")["x"], torch.ones(1))


class _Exploit:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("touch pwned",))


def test_loading_never_executes_pickled_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "evil.pt"
    torch.save({"d2rl_checkpoint": 1, "payload": _Exploit()}, bad)
    with pytest.raises(D2RLError, match="not a readable d2rl checkpoint"):
        checkpoint.load(bad)
    assert not (tmp_path / "pwned").exists()


def test_missing_and_foreign_files_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(D2RLError, match="does not exist"):
        checkpoint.load(tmp_path / "nope.pt")
    with pytest.raises(D2RLError, match="no checkpoint in"):
        checkpoint.load(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(D2RLError, match="not a readable d2rl checkpoint"):
        checkpoint.load(tmp_path / "notes.txt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(D2RLError, match="not a d2rl checkpoint"):
        checkpoint.load(tmp_path / "other.pt")
    (tmp_path / "p.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(D2RLError):
        checkpoint.load(tmp_path / "p.pkl")


def test_replay_in_a_separate_file_is_pruned_with_its_step(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``replay.separate_file=true``: the step file names ``replay_<step>.pt`` and holds no replay;
    retention removes a step's replay file with it; a pruned replay resumes as empty (warned)."""
    ckpt = tmp_path / "checkpoints"
    storage = {"obs": torch.arange(6.0), "priorities": torch.ones(6)}
    for step in (100, 200, 300):
        checkpoint.save(ckpt, _full(storage=storage), step, keep=2, separate_storage=True)
    names = sorted(p.name for p in ckpt.iterdir())
    assert names == ["last.pt", "replay_000000000200.pt", "replay_000000000300.pt",
                     "step_000000000200.pt", "step_000000000300.pt"]
    last = checkpoint.load(ckpt)
    assert last["storage"] == {} and last["storage_file"] == "replay_000000000300.pt"
    got = checkpoint.load_storage(last, ckpt / checkpoint.LAST)
    assert torch.equal(got["obs"], storage["obs"]) and torch.equal(got["priorities"], storage["priorities"])
    inline = _full(storage=storage)
    assert checkpoint.load_storage(inline, ckpt) is storage  # inline storage as it is
    (ckpt / "replay_000000000300.pt").unlink()
    assert checkpoint.load_storage(last, ckpt / checkpoint.LAST) == {}
    assert "resuming with an empty replay" in caplog.text
    (ckpt / "replay_000000000200.pt").write_bytes(pickle.dumps(object()))
    with pytest.raises(D2RLError, match="not a readable d2rl replay file"):
        checkpoint.load_storage(checkpoint.load(ckpt / "step_000000000200.pt"), ckpt / "step_000000000200.pt")
