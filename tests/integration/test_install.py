"""The configs ship inside the package: a plain (non-editable) install finds them outside the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_plain_pip_install_finds_configs(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    assert (target / "d2rl" / "conf" / "config.yaml").is_file()
    assert (target / "d2rl" / "conf" / "tuned" / "ppo_cartpole.yaml").is_file()
    work = tmp_path / "elsewhere"
    work.mkdir()
    code = "import sys, d2rl, d2rl.cli; print(d2rl.__file__, file=sys.stderr); sys.argv=['d2rl', '--cfg', 'job']; d2rl.cli.main()"
    env = {**os.environ, "PYTHONPATH": str(target)}
    r = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().startswith(str(target))  # the installed copy, not the source tree
    cfg = yaml.safe_load(r.stdout)
    assert cfg["algo"]["name"] == "ppo" and cfg["env"]["id"] == "CartPole-v1"
