"""Algorithms: one module per family, each a config dataclass + loss/update + registry spec."""
