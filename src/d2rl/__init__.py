"""d2rl: deep reinforcement learning with Hydra configs and Lightning agents."""

__version__ = "0.1.0"
