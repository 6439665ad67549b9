"""The plugin walk-through of docs/plugins.md, for real: pip-install the example plugin
(plugins/d2rl-reinforce) and use it through the `d2rl` commands; broken plugins fail narrowly.

The plugin is installed with ``pip install --target <tmp>`` (no deps, no build isolation: offline
and ~2 s) and put on PYTHONPATH for the subprocesses, so the test environment is left unchanged.
Entry points are found exactly as after a plain ``pip install``: from the installed dist-info.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "plugins" / "d2rl-reinforce"
TINY = ["trainer.progress_bar=false", "trainer.eval_period_env_steps=0", "logger.learning_curve=false"]


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    # build from a copy: setuptools leaves build/ and *.egg-info next to the sources it builds
    source = tmp_path_factory.mktemp("src") / PLUGIN.name
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300, cwd=target,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert (target / "d2rl_reinforce" / "conf" / "env" / "toy_corridor.yaml").exists()
    return target


def run(
    cmd: str, *args: str, cwd: Path, pythonpath: Path | str | None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "MPLBACKEND": "Agg"}
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(BIN / cmd), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def test_list_shows_the_plugin_with_its_package(plugin_path: Path, tmp_path: Path) -> None:
    r = run("d2rl-list", cwd=tmp_path, pythonpath=plugin_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(ln.split()[:2] == ["reinforce", "d2rl-reinforce"] and "discrete, box" in ln for ln in lines)
    assert any(ln.split()[:2] == ["resmlp", "d2rl-reinforce"] for ln in lines)
    assert any(ln.split()[:2] == ["toy", "d2rl-reinforce"] for ln in lines)
    assert "toy_corridor" in r.stdout and "reinforce_entropy" in r.stdout


def test_train_with_plugin_algo_network_and_env(plugin_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = run("d2rl", "algo=reinforce", "env=toy_corridor", "network=resmlp", "seed=3",
            "trainer.total_env_steps=768", f"output_dir={out}", *TINY, cwd=tmp_path, pythonpath=plugin_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["algo"] == "reinforce" and summary["network"] == "resmlp" and summary["env"] == "Corridor-v0"
    )
    assert summary["env_steps"] == 768
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["env"]["suite"] == "toy" and cfg["env"]["kwargs"] == {
        "length": 8,
        "step_cost": 0.01,
    }  # plugin YAML
    assert cfg["algo"]["num_steps"] == 32  # the plugin's tuned/reinforce_toy_corridor.yaml
    assert cfg["network"] == {"name": "resmlp", "width": 64, "num_blocks": 2}
    assert summary["final_eval"]["mean"] == pytest.approx(0.94)  # the corridor's optimal return
    assert (out / "checkpoints" / "last.pt").exists() and (out / "metrics.csv").exists()
    # the checkpoint evaluates through d2rl-eval, which rebuilds the plugin's agent from the registry
    ev = run("d2rl-eval", f"checkpoint={out}", "episodes=2", cwd=tmp_path, pythonpath=plugin_path)
    assert ev.returncode == 0 and "return 0.94" in ev.stdout, ev.stderr[-2000:]


def _plugin_tests(plugin_path: Path, marker: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(plugin_path), "MPLBACKEND": "Agg"}
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marker, "tests"],
        cwd=PLUGIN, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and "failed" not in r.stdout


def test_plugin_own_tests_pass(plugin_path: Path) -> None:
    _plugin_tests(plugin_path, "not slow")


@pytest.mark.slow
@pytest.mark.ci
def test_plugin_learns_cartpole(plugin_path: Path) -> None:
    _plugin_tests(plugin_path, "slow")  # REINFORCE: the final policy >= 400 on CartPole-v1 after 100k steps


def _fake_dist(site: Path, name: str, entry_points: str) -> None:
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_bad_plugins_are_named_and_the_rest_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], make_cfg
) -> None:  # type: ignore[no-untyped-def]
    """In-process (the d2rl commands' own functions) to save the ~10 s start-up of each subprocess."""
    from d2rl import cli, registry
    from d2rl.train import train

    site = tmp_path / "site"
    _fake_dist(
        site,
        "broken-plugin",
        "[d2rl.algorithms]\nbroken = no_such_module_xyz:SPEC\ndup = d2rl.algorithms.ppo:SPEC\n",
    )
    _fake_dist(
        site,
        "other-plugin",
        "[d2rl.algorithms]\ndup = d2rl.algorithms.ppo:SPEC\nhalf = d2rl.networks:MLP\n",
    )
    monkeypatch.syspath_prepend(str(site))
    registry.load_group.cache_clear()
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")  # bad plugins are listed, not warned about on every run
            cli.list_main()
        listing = capsys.readouterr().out
        broken = listing.split("broken plugins:")[1]
        assert "plugin 'broken' from package 'broken-plugin'" in broken and "ModuleNotFoundError" in broken
        assert (
            "'dup' in d2rl.algorithms is registered by several packages (broken-plugin, other-plugin)"
            in broken
        )
        assert "plugin 'half' from package 'other-plugin'" in broken
        assert "is a NetworkSpec, expected d2rl.specs.AlgorithmSpec (missing action_spaces)" in broken
        assert any(ln.split()[:2] == ["ppo", "d2rl"] for ln in listing.splitlines())
        for algo, pattern in [
            ("broken", "plugin 'broken' from package 'broken-plugin'"),
            ("dup", "uninstall one"),
        ]:
            with pytest.raises(SystemExit) as exit_info:
                cli._check_choices([f"algo={algo}", "seed=1"])
            assert exit_info.value.code == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith("d2rl: error:") and pattern in err[0]
        # the healthy algorithms still train
        result = train(make_cfg("algo=ppo", "~tuned", "trainer.total_env_steps=256", "algo.num_steps=64"))
        assert result["env_steps"] == 256
    finally:
        monkeypatch.undo()
        registry.load_group.cache_clear()
