"""Loops: how experience is gathered (``distributed=local``; the Ray loops plug in beside it)."""
