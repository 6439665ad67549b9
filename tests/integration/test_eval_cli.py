"""d2rl-eval as a user types it: reproducible episodes/seed, render=true without a display,
Grad-CAM on a pixel agent and its refusal for an MLP agent."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
TINY = [
    "~tuned",
    "trainer.progress_bar=false",
    "trainer.eval_period_env_steps=0",
    "trainer.final_eval_episodes=1",
    "logger.learning_curve=false",
]


def run(
    cmd: str, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / cmd), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})},
    )


def returns_of(stdout: str) -> str:
    (line,) = [x for x in stdout.splitlines() if " env steps: return " in x]
    return line


def test_episodes_and_seed_are_reproducible_and_render_without_display(tmp_path: Path) -> None:
    r = run("d2rl", *TINY, "trainer.total_env_steps=512", "output_dir=run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    args = ["checkpoint=run", "episodes=4", "seed=11", "deterministic=false"]  # stochastic: seeds matter
    a, b = run("d2rl-eval", *args, cwd=tmp_path), run("d2rl-eval", *args, cwd=tmp_path)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert returns_of(a.stdout) == returns_of(b.stdout)
    c = run("d2rl-eval", "checkpoint=run", "episodes=4", "seed=12", "deterministic=false", cwd=tmp_path)
    assert returns_of(c.stdout) != returns_of(a.stdout)  # a different seed plays other episodes
    no_display = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    d = subprocess.run(
        [str(BIN / "d2rl-eval"), *args, "render=true"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=no_display,
    )
    assert d.returncode == 0, d.stderr
    said = [x for x in d.stderr.splitlines() if "render=true" in x]
    assert len(said) == 1 and "no display" in said[0]
    assert returns_of(d.stdout) == returns_of(a.stdout)  # the same episodes, without a window
    if importlib.util.find_spec("pygame") is not None:  # the window path, on SDL's dummy display
        w = run(
            "d2rl-eval",
            "checkpoint=run",
            "episodes=2",
            "render=true",
            cwd=tmp_path,
            env={"DISPLAY": ":99", "SDL_VIDEODRIVER": "dummy"},
        )
        assert w.returncode == 0 and "no display" not in w.stderr, w.stderr
        assert "over 2 episodes" in w.stdout
    g = run("d2rl-eval", "checkpoint=run", "episodes=1", "gradcam=true", cwd=tmp_path)
    assert g.returncode == 2 and "Grad-CAM needs a conv network" in g.stderr
    assert len(g.stderr.strip().splitlines()) == 1 and "Traceback" not in g.stderr


@pytest.mark.skipif(importlib.util.find_spec("ale_py") is None, reason="ale-py not installed")
def test_gradcam_of_a_pixel_agent(tmp_path: Path) -> None:
    r = run(
        "d2rl",
        *TINY,
        "algo=dqn",
        "env=atari_pong",
        "env.num_envs=1",
        "env.max_episode_steps=16",
        "algo.learning_starts_env_steps=64",
        "replay.capacity=1000",
        "trainer.total_env_steps=128",
        "output_dir=pong",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    g = run(
        "d2rl-eval",
        "checkpoint=pong",
        "episodes=1",
        "gradcam=true",
        "gradcam.pngs=3",
        "gradcam.layers=[q.encoder.convs.0,q.encoder.convs.4]",
        cwd=tmp_path,
    )
    if g.returncode == 2 and "no conv layer named" in g.stderr:  # report the names this network has
        pytest.fail(g.stderr)
    assert g.returncode == 0, g.stderr
    out = tmp_path / "pong" / "gradcam"
    pngs = sorted(out.glob("gradcam_step*.png"))
    assert len(pngs) == 3 and (out / "gradcam.mp4").stat().st_size > 1000
    from PIL import Image

    assert Image.open(pngs[0]).size == (160, 210)  # drawn on the full-resolution frame
    cv2 = pytest.importorskip("cv2")
    cap = cv2.VideoCapture(str(out / "gradcam.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 16
    assert re.search(r"gradcam: .*gradcam\.mp4 and 3 PNG frames", g.stdout)
    bad = run(
        "d2rl-eval", "checkpoint=pong", "episodes=1", "gradcam=true", "gradcam.layers=[nope]", cwd=tmp_path
    )
    assert bad.returncode == 2 and "no conv layer named ['nope']" in bad.stderr
