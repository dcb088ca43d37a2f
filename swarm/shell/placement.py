"""Where workers go: which nodes get a new worker, given the cluster and the workers running.
Pure: the driver turns `ray.nodes()` into `Node`s and starts what `plan` returns.

Workers are placed on a chosen node rather than left to Ray, so the driver knows (and tells the
coordinator) which node, and so whether a volunteer, each worker runs on. Auto follows the
cluster: a node that joins adds its slots, one that leaves takes them away.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from swarm.core.config import WorkersSpec

__all__ = ["Node", "VOLUNTEER_RESOURCE", "VOLUNTEER_LABEL", "node_from_ray", "slots", "wanted", "plan"]

# What `swarm join` marks a volunteer's node with: a custom resource (shown by `ray status`)
# and a label (beta in Ray); either one makes the node a volunteer.
VOLUNTEER_RESOURCE = "swarm_volunteer"
VOLUNTEER_LABEL = ("swarm-role", "volunteer")
_EPSILON = 1e-6  # resources are floats: 4 x 0.25 GPUs must fit in 1


@dataclass(frozen=True)
class Node:
    node_id: str
    cpus: float
    gpus: float
    volunteer: bool = False
    accelerator: str | None = None  # Ray's accelerator type, e.g. "H100"


def node_from_ray(entry: Mapping[str, Any]) -> Node | None:
    """A `ray.nodes()` entry as a Node; None for a dead node."""
    if not entry.get("Alive"):
        return None
    resources = entry.get("Resources", {})
    labels = entry.get("Labels") or {}
    accelerators = [k.split(":", 1)[1] for k in resources if k.startswith("accelerator_type:")]
    return Node(entry["NodeID"], float(resources.get("CPU", 0)), float(resources.get("GPU", 0)),
                volunteer=resources.get(VOLUNTEER_RESOURCE, 0) > 0
                or labels.get(VOLUNTEER_LABEL[0]) == VOLUNTEER_LABEL[1],
                accelerator=accelerators[0] if accelerators else None)


def slots(node: Node, spec: WorkersSpec) -> int:
    """How many workers fit on the node."""
    fits = [math.floor(have / need + _EPSILON)
            for have, need in ((node.gpus, spec.gpus_per_worker), (node.cpus, spec.cpus_per_worker))
            if need > 0]
    return max(min(fits), 0)


def wanted(nodes: Iterable[Node], spec: WorkersSpec) -> int:
    """The number of workers the run should have now."""
    count = sum(slots(n, spec) for n in nodes) if spec.count == "auto" else spec.count
    return min(count, spec.max_workers) if spec.max_workers else count


def plan(nodes: list[Node], spec: WorkersSpec, running_on: Mapping[str, int],
         allowed: int | None = None) -> list[str]:
    """Node ids to start one new worker on each: up to `wanted` minus those running, where
    slots are free; trusted nodes before volunteers (a volunteer's winners need a trusted
    worker to confirm them), then the node with the most free slots (so workers spread).
    `allowed` caps how many may start (replacements left)."""
    free = {n.node_id: slots(n, spec) - running_on.get(n.node_id, 0) for n in nodes}
    order = {n.node_id: (n.volunteer, n.node_id) for n in nodes}
    missing = wanted(nodes, spec) - sum(running_on.values())
    if allowed is not None:
        missing = min(missing, allowed)
    chosen: list[str] = []
    while len(chosen) < missing:
        node_id = min((n for n in free if free[n] > 0),
                      key=lambda n: (order[n][0], -free[n], order[n][1]), default=None)
        if node_id is None:
            break  # the cluster is full: the rest start when capacity joins
        chosen.append(node_id)
        free[node_id] -= 1
    return chosen
