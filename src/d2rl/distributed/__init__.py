"""Distributed training on Ray: Ape-X (Horgan et al. 2018) and SEED (Espeholt et al. 2019).

The same Policy, Storage and Learner as ``distributed=local``; Ray actors step the envs
(``actor``), replay shard actors hold the prioritized storage (``replay``), a central inference
actor batches SEED's observations (``inference``), and the driver process runs the Lightning
Trainer fed by ``loop.DistributedLoop`` (``fit``). Weights travel through Ray's object store.
"""

from d2rl.distributed.fit import fit_distributed

__all__ = ["fit_distributed"]
