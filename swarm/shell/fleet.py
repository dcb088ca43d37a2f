"""The worker actors of one session, each with its running `run()` call, started node by node
where `placement.plan` has room. The driver refills the fleet as nodes join and workers die.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import ActorDiedError, RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from coordinator.client import CoordinatorClient
from swarm.core.config import SwarmConfig
from swarm.core.errors import CoordinatorLost
from swarm.core.values import Placement
from swarm.shell.placement import Node, node_from_ray, plan
from swarm.shell.supervise import WorkerEnd
from workers.actor import WorkerActor

__all__ = ["Fleet", "NODE_POLL_S"]

log = logging.getLogger("swarm.driver")

NODE_POLL_S = 2.0  # how often the driver looks for nodes that joined (Ray has no push for it)


@dataclass(frozen=True)
class _Worker:
    worker_id: str
    actor: Any
    node: Node


class Fleet:
    def __init__(self, config: SwarmConfig, client: CoordinatorClient, run_tag: str,
                 private: tuple[str, ...] = ()) -> None:
        """`private`: paths no trial may see (the run directory), on any node that has them."""
        self.config, self.client, self.run_tag = config, client, run_tag
        self.private = private
        self.running: dict[Any, _Worker] = {}  # run() ref -> worker
        self.started = 0
        self.nodes: list[Node] = []
        self.looked_at = 0.0

    def look_due(self) -> bool:
        return time.monotonic() - self.looked_at >= NODE_POLL_S

    def fill(self, allowed: int | None) -> int:
        """Starts workers where the plan has room (at most `allowed`); how many it started."""
        self.looked_at = time.monotonic()
        self.nodes = _live_nodes()
        running_on = Counter(w.node.node_id for w in self.running.values())
        by_id = {n.node_id: n for n in self.nodes}
        chosen = plan(self.nodes, self.config.workers, running_on, allowed)
        for node_id in chosen:
            self._start(by_id[node_id])
        return len(chosen)

    def _start(self, node: Node) -> None:
        worker_id = f"w{self.started}"
        spec = self.config.workers
        seed = None if self.config.proposer.seed is None else self.config.proposer.seed + self.started
        # Placement first: a volunteer's worker must never be taken for a trusted one.
        self.client.place(worker_id, self._placement(node))
        actor = WorkerActor.options(  # type: ignore[attr-defined]
            num_cpus=spec.cpus_per_worker, num_gpus=spec.gpus_per_worker,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False),
        ).remote(worker_id, self.config, self.client, self.run_tag, seed, self._placement(node), self.private)
        self.running[actor.run.remote()] = _Worker(worker_id, actor, node)
        self.started += 1
        log.info("worker %s started on node %s%s", worker_id, node.node_id[:8],
                 " (volunteer)" if node.volunteer else "")

    def _placement(self, node: Node) -> Placement:
        gpu_class = self.config.workers.gpus_per_worker > 0 and node.accelerator
        return Placement(node.node_id[:8], node.volunteer, f"gpu:{node.accelerator}" if gpu_class else "")

    def placement(self) -> dict[str, Placement]:
        """What the coordinator is told about each running worker (it trusts this, not them)."""
        return {w.worker_id: self._placement(w.node) for w in self.running.values()}

    def finished(self, timeout_s: float) -> list[WorkerEnd]:
        """Waits for run() calls to end, and says how each ended."""
        if not self.running:
            time.sleep(timeout_s)
            return []
        ready, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=timeout_s)
        ended = []
        for ref in ready:
            worker = self.running.pop(ref)
            try:
                ray.get(ref)
                ended.append(WorkerEnd(worker.worker_id))
            except RayError as exc:
                reason = " ".join(str(exc).split())[:300]
                log.warning("worker %s ended: %s", worker.worker_id, reason)
                ended.append(WorkerEnd(worker.worker_id, reason, _coordinator_gone(exc),
                                       self._node_alive(worker.node.node_id)))
        return ended

    def _node_alive(self, node_id: str) -> bool:
        alive = any(n.node_id == node_id for n in _live_nodes())
        if not alive:
            log.warning("node %s left; its workers' trials are lost", node_id[:8])
        return alive

    def kill_all(self) -> list[str]:
        """Kills every worker at once; returns their ids."""
        killed = [w.worker_id for w in self.running.values()]
        for worker in self.running.values():
            ray.kill(worker.actor, no_restart=True)
        self.running.clear()
        return killed


def _live_nodes() -> list[Node]:
    return [n for n in map(node_from_ray, ray.nodes()) if n is not None]


def _coordinator_gone(error: BaseException) -> bool:
    """A worker whose coordinator calls failed for good says so through its own error."""
    cause = getattr(error, "cause", None)
    return isinstance(cause, CoordinatorLost) or (
        isinstance(cause, ActorDiedError) and "CoordinatorActor" in str(cause))
