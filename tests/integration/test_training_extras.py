"""trainer.total_episodes, the eval video during training (run folder + TensorBoard), W&B offline."""

from __future__ import annotations

import importlib.util
import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig

from d2rl.train import train


def test_total_episodes_stops_a_replay_run_at_that_episode(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg(
        "algo=dqn",
        "~tuned",
        "env.num_envs=1",
        "trainer.total_env_steps=100000",
        "trainer.total_episodes=5",
        "algo.learning_starts_env_steps=50",
    )
    out = train(cfg)
    summary = json.loads((Path(out["run_dir"]) / "summary.json").read_text())
    assert summary["episodes"] == 5
    assert summary["env_steps"] < 100000 and summary["env_steps"] == out["env_steps"]
    assert (Path(out["run_dir"]) / "checkpoints" / "last.pt").exists()  # the end of training, as usual


def test_total_episodes_stops_a_rollout_run_after_that_learner_step(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg("algo=ppo", "~tuned", "env.num_envs=2", "algo.num_steps=64", "trainer.total_episodes=3")
    out = train(cfg)
    summary = json.loads((Path(out["run_dir"]) / "summary.json").read_text())
    # a rollout is not cut: the run ends with the learner step in which the 3rd episode finished
    assert summary["episodes"] >= 3 and summary["learner_steps"] * 128 == summary["env_steps"]
    assert summary["learner_steps"] <= 3  # a random CartPole policy ends an episode every ~20 steps


def test_eval_video_during_training(make_cfg: Callable[..., DictConfig]) -> None:
    pytest.importorskip("pygame")  # CartPole draws its frames with pygame
    cfg = make_cfg(
        "algo=ppo",
        "~tuned",
        "env.num_envs=2",
        "algo.num_steps=64",
        "env.max_episode_steps=20",
        "trainer.total_env_steps=512",
        "trainer.eval_video_period_env_steps=256",
    )
    run_dir = Path(train(cfg)["run_dir"])
    videos = sorted(p.name for p in (run_dir / "videos").glob("*.mp4"))
    assert videos == ["eval_step000000000256.mp4", "eval_step000000000512.mp4"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    shown = events.Images("eval/video")
    assert [e.step for e in shown] == [256, 512]
    assert shown[0].encoded_image_string[:6] == b"GIF89a" and (shown[0].height, shown[0].width) == (400, 600)


def wandb_records(path: Path) -> Iterator[Any]:
    """The records of an offline W&B run file (a LevelDB-style log of protobuf ``Record`` messages)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, buf = path.read_bytes(), 7, 32768, b""  # 7: the ':W&B' file header
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a record header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk  # 1 full, 2 first, 3 middle, 4 last
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            yield record


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb not installed (extra 'wandb')")
def test_wandb_offline_run_folder_holds_the_metrics(
    make_cfg: Callable[..., DictConfig], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = make_cfg(
        "algo=ppo",
        "~tuned",
        "env.num_envs=2",
        "algo.num_steps=64",
        "trainer.total_env_steps=512",
        "trainer.log_period_env_steps=128",
        "logger.wandb=true",
        "logger.learning_curve=true",
        fast=True,
    )
    run_dir = Path(train(cfg)["run_dir"])
    (run_file,) = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    history, config = [], {}
    for r in wandb_records(run_file):
        kind = r.WhichOneof("record_type")
        if kind == "history":
            history.append(
                {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
            )
        elif kind == "run":  # the config travels with the run record
            config.update({i.key: json.loads(i.value_json) for i in r.run.config.update})
    returns = [h["train/episode_return"] for h in history if "train/episode_return" in h]
    assert len(returns) > 5 and all(r > 0 for r in returns)
    final = [h for h in history if "eval/return_mean" in h]
    assert final and final[-1]["env_step"] == 512
    assert any(k.startswith("learning_curve") for h in history for k in h)  # the learning curve image
    assert config["algo"]["name"] == "ppo" and config["trainer"]["total_env_steps"] == 512
