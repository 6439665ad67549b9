"""Experience storage: rollout buffer with GAE (on-policy), uniform and prioritized replay."""

from d2rl.buffers.make import make_replay, make_replay_for

__all__ = ["make_replay", "make_replay_for"]
