"""Fixtures shared by test modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ray_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One temporary HOME for every Ray instance of the session. Ray writes its auth token there
    on the first start and remembers it in the process; a later start in the same process under
    another HOME finds no token and its GCS server refuses to run."""
    return tmp_path_factory.mktemp("ray-home")


@contextmanager
def local_ray(home: Path, namespace: str, num_cpus: int, **env: str) -> Iterator[None]:
    """A real local Ray instance for one test module, with env set for it and its workers."""
    import ray

    patch = pytest.MonkeyPatch()
    patch.setenv("HOME", str(home))  # Ray writes its token there
    for name, value in env.items():
        patch.setenv(name, value)
    patch.delenv("RAY_ADDRESS", raising=False)
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, namespace=namespace,
             log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        patch.undo()


# The modules that take half a minute or more, longest first (summed test times of a `make test`).
# `make test` runs two modules at a time and hands them out in collection order, so these
# start first and the short ones fill the end, instead of one long module running alone last.
LONG_MODULES = ("test_ml_target.py", "test_swarm_ray.py", "test_cluster.py", "test_jobs.py", "test_stops.py",
                "test_simulate.py", "test_status_truth.py", "test_refusals.py", "test_llm_swarm_ray.py",
                "test_coordinator_inprocess.py", "test_packaging.py", "test_bench_capacity.py",
                "test_llm_proposer.py", "test_report.py", "test_bench_peer.py", "test_search_efficiency.py",
                "test_cli.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONG_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_MODULES)))  # stable within a module
