"""Where workers go (swarm/shell/placement.py): pure, no Ray."""

from __future__ import annotations

import pytest

from swarm.core.config import WorkersSpec
from swarm.shell.placement import Node, node_from_ray, plan, slots, wanted

GPU_NODES = [Node("a", cpus=8, gpus=2), Node("b", cpus=8, gpus=1)]


@pytest.mark.parametrize(("spec", "expected"), [
    (WorkersSpec(count="auto", gpus_per_worker=1), 3),  # one per GPU
    (WorkersSpec(count="auto", gpus_per_worker=0.25, cpus_per_worker=1), 12),  # 4 per GPU
    (WorkersSpec(count="auto", gpus_per_worker=0.25, cpus_per_worker=4), 4),  # CPUs bind first
    (WorkersSpec(count="auto", gpus_per_worker=1, max_workers=2), 2),
    (WorkersSpec(count=5, gpus_per_worker=1), 5),  # fixed: the rest wait for capacity
])
def test_the_number_of_workers_wanted(spec: WorkersSpec, expected: int) -> None:
    assert wanted(GPU_NODES, spec) == expected


def test_workers_spread_to_the_node_with_most_room_and_stop_when_the_cluster_is_full() -> None:
    spec = WorkersSpec(count=5, gpus_per_worker=1)
    assert plan(GPU_NODES, spec, {}) == ["a", "a", "b"]  # on a tie, the node id decides
    assert plan(GPU_NODES, spec, {"a": 2}) == ["b"]
    assert plan(GPU_NODES, spec, {"a": 2, "b": 1}) == []
    assert plan(GPU_NODES, spec, {}, allowed=1) == ["a"]


def test_trusted_nodes_come_first_even_when_a_volunteer_has_more_room() -> None:
    nodes = [Node("trusted", cpus=4, gpus=1), Node("lent", cpus=16, gpus=8, volunteer=True)]
    assert plan(nodes, WorkersSpec(count=2, gpus_per_worker=1), {}) == ["trusted", "lent"]


def test_a_ray_node_entry_becomes_a_node_and_a_dead_one_nothing() -> None:
    entry = {"Alive": True, "NodeID": "n1", "Labels": {},
             "Resources": {"CPU": 8.0, "GPU": 1.0, "accelerator_type:H100": 1.0, "swarm_volunteer": 1.0}}
    assert node_from_ray(entry) == Node("n1", 8.0, 1.0, volunteer=True, accelerator="H100")
    assert node_from_ray({**entry, "Alive": False}) is None
    labelled = {**entry, "Resources": {"CPU": 2.0}, "Labels": {"swarm-role": "volunteer"}}
    assert node_from_ray(labelled).volunteer
    assert slots(Node("c", cpus=2, gpus=0), WorkersSpec(count=1, gpus_per_worker=1)) == 0
