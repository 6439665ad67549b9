"""Procgen defaults of the on-policy family (per-suite tuned files), the experiment recipes, and a
short run of the headline command ``d2rl algo=ppg env=procgen_coinrun network=impala_resnet``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from d2rl.cli import evaluate_checkpoint
from d2rl.config import EvalConfig
from d2rl.train import train


def test_procgen_defaults_apply_to_every_game_without_flags(make_cfg) -> None:  # type: ignore[no-untyped-def]
    for game in ("procgen_starpilot",):  # any game: the file is tuned/<algo>_procgen.yaml
        ppo = make_cfg("algo=ppo", f"env={game}")
        assert ppo.algo.shared_encoder is True and ppo.algo.num_steps == 256 and ppo.algo.update_epochs == 3
        assert ppo.env.num_envs == 64 and ppo.algo.gamma == 0.999
        ppg = make_cfg("algo=ppg", f"env={game}")
        assert (ppg.env.num_envs, ppg.algo.n_pi, ppg.algo.aux_epochs, ppg.algo.beta_clone) == (16, 32, 6, 1.0)
        daac = make_cfg("algo=daac", f"env={game}")
        assert (daac.algo.value_epochs, daac.algo.n_pi, daac.algo.adv_coef) == (9, 1, 0.25)
    assert make_cfg("algo=ppo", "env=procgen_coinrun", "~tuned").algo.shared_encoder is False
    assert make_cfg("algo=ppo", "env=procgen_coinrun", "algo.num_steps=64").algo.num_steps == 64
    assert make_cfg("algo=ppo", "env=atari_pong").algo.num_steps == 128  # no tuned file for atari


@pytest.mark.parametrize("algo", ["ppo", "ppg", "daac"])
def test_procgen_recipes_set_the_paper_protocol(make_cfg, algo: str) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(f"experiment={algo}_procgen")
    assert cfg.algo.name == algo and cfg.network.name == "impala_resnet" and cfg.env.id == "coinrun"
    assert cfg.trainer.total_env_steps == 25_000_000 and cfg.env.num_envs == 64
    assert (cfg.env.kwargs.distribution_mode, cfg.env.kwargs.num_levels) == ("easy", 200)
    assert cfg.algo.gamma == 0.999 and cfg.algo.lr == 5e-4 and cfg.algo.num_steps == 256


@pytest.mark.slow
def test_headline_command_runs_with_an_auxiliary_phase(make_cfg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("procgen")
    # the headline command with its defaults, shortened: fewer envs and steps, N_pi = 2
    cfg = make_cfg(
        "algo=ppg", "env=procgen_coinrun", "network=impala_resnet", "env.num_envs=4", "algo.num_steps=8",
        "algo.n_pi=2", "trainer.total_env_steps=96", "trainer.final_eval_episodes=1", "trainer.log_period_env_steps=32",
    )  # fmt: skip
    train(cfg)
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    aux = [r.split(",")[header.index("loss/aux_kl")] for r in rows[1:]]
    assert any(v and math.isfinite(float(v)) for v in aux), "no auxiliary phase ran"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["algo"] == "ppg" and summary["network"] == "impala_resnet"
    played = evaluate_checkpoint(
        OmegaConf.structured(EvalConfig(checkpoint=str(tmp_path / "run"), episodes=1, num_envs=1))
    )
    assert played["episodes"] == 1
