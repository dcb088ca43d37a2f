"""A worker as a Ray actor: a thin shell over `workers.loop.WorkerLoop`.

max_restarts=0: a dead worker is not re-run by Ray (that could silently repeat minutes of
work); the driver records its trial lost and starts a fresh worker instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from swarm.core.config import SwarmConfig
from workers.proposers import make_proposer
from workers.loop import WorkerLoop

__all__ = ["WorkerActor", "RetryingClient"]

_CALL_TIMEOUT_S = 300.0  # no coordinator call should take this long; a hung one is retried
_COORDINATOR_GONE_S = 120.0  # how long to wait for a restarting coordinator before giving up


class RetryingClient:
    """Calls the coordinator actor, riding out its restarts (its methods are safe to retry)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any) -> Any:
            deadline = time.monotonic() + _COORDINATOR_GONE_S
            delay = 0.2
            while True:
                try:
                    return ray.get(getattr(self._handle, method).remote(*args),
                                   timeout=_CALL_TIMEOUT_S)
                except (RayActorError, GetTimeoutError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
        return call


@ray.remote(max_restarts=0, max_task_retries=0)
class WorkerActor:
    def __init__(self, worker_id: str, config: SwarmConfig, coordinator: Any, run_tag: str,
                 seed: int | None, placed: dict[str, Any] | None = None) -> None:
        # The worker's clone lives on its own node: no shared file system is assumed.
        self._root = Path(tempfile.gettempdir()) / "swarm-workers" / run_tag / worker_id
        shutil.rmtree(self._root, ignore_errors=True)
        context = ray.get_runtime_context()
        where = {**(placed or {}), "node": context.get_node_id()[:8], "pid": os.getpid(),
                 "gpus": ",".join(str(g) for g in ray.get_gpu_ids()), "root": str(self._root)}
        self._loop = WorkerLoop(worker_id, config, RetryingClient(coordinator), self._root,
                                make_proposer(config.proposer, seed), where)

    def run(self) -> int:
        """Works until the coordinator says stop; returns how many trials it reported."""
        try:
            return self._loop.run()
        finally:
            shutil.rmtree(self._root, ignore_errors=True)
