"""Example d2rl plugin: an algorithm (``reinforce``), a network (``resmlp``) and an env suite
(``toy``, with ``env=toy_corridor``), all registered through entry points in pyproject.toml."""

__version__ = "0.1.0"
