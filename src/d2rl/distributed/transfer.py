"""State that crosses Ray as numpy arrays, not tensors.

Ray serializes numpy arrays into its object store directly and hands them back as read-only
views of it (zero copy). A tensor is pickled the way ``torch.save`` writes it: into a bytes buffer
first, and read back through ``torch.load``, which allocates everything once more. For the
replay a checkpoint pulls from each shard, and the weights every actor pulls many times a minute,
those copies are work and heap churn with no use: the Ape-X soak showed the shard's memory rising
by a replay's size at each of its first checkpoints.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch


def as_arrays(state: Any) -> Any:
    """Tensors (nested in dicts) as numpy arrays that share their memory; a dtype numpy lacks
    (bfloat16) stays a tensor. Only for a value Ray serializes before the tensors change
    (``ray.put``, an actor method's return)."""
    if isinstance(state, dict):
        return {k: as_arrays(v) for k, v in state.items()}
    if isinstance(state, torch.Tensor) and state.dtype != torch.bfloat16:
        return state.detach().cpu().numpy()
    return state


def as_tensors(state: Any) -> Any:
    """The inverse: every numpy array (nested in dicts) a tensor sharing its memory. Arrays from
    Ray's object store are read-only; torch only reads them here (``torch.save``, or
    ``load_state_dict``, which copies into the module's own parameters)."""
    if isinstance(state, dict):
        return {k: as_tensors(v) for k, v in state.items()}
    if isinstance(state, np.ndarray):
        with warnings.catch_warnings():  # (read-only pages: torch warns, and only reads them here)
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.from_numpy(state)
    return state
