"""A worker as a Ray actor: a thin shell over `workers.loop.WorkerLoop`.

max_restarts=0: a dead worker is not re-run by Ray (that could silently repeat minutes of
work); the driver records its trial lost and starts a fresh worker instead.
"""

from __future__ import annotations

import os

import ray

from swarm.core.config import SwarmConfig
from swarm.core.values import Placement, WorkerSite
from workers import scratch
from workers.loop import CoordinatorCalls, WorkerLoop
from workers.proposers import make_proposer

__all__ = ["WorkerActor"]


@ray.remote(max_restarts=0, max_task_retries=0)
class WorkerActor:
    def __init__(self, worker_id: str, config: SwarmConfig, coordinator: CoordinatorCalls,
                 run_tag: str, seed: int | None, placed: Placement | None = None,
                 private: tuple[str, ...] = ()) -> None:
        """`coordinator`: the client the driver made (it retries the coordinator's restarts)."""
        # The worker's clone lives on its own node: no shared file system is assumed. What dead
        # workers of any session left on this node goes first (their owners are gone for good).
        scratch.sweep()
        self._scratch = scratch.claim(scratch.base() / run_tag / worker_id)
        context = ray.get_runtime_context()
        site = WorkerSite(hardware=placed.hardware if placed else "",
                          node=context.get_node_id()[:8], pid=os.getpid(),
                          gpus=",".join(str(g) for g in ray.get_gpu_ids()), root=str(self._scratch.root))
        self._loop = WorkerLoop(worker_id, config, coordinator, self._scratch.root,
                                make_proposer(config.proposer, seed), site, private=private)

    def run(self) -> int:
        """Works until the coordinator says stop; returns how many trials it reported."""
        try:
            return self._loop.run()
        finally:
            self._scratch.release()
