"""Experience storage: rollout buffer with GAE (on-policy), uniform and prioritized replay."""

from d2rl.buffers.make import make_replay

__all__ = ["make_replay"]
