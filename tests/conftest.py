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
