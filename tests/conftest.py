"""Fixtures shared by test modules."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ray_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One temporary HOME for every Ray instance of the session. Ray writes its auth token there
    on the first start and remembers it in the process; a later start in the same process under
    another HOME finds no token and its GCS server refuses to run."""
    return tmp_path_factory.mktemp("ray-home")
