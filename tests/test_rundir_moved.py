"""A run directory copied or moved elsewhere resumes on its own repository (coordinator/pool.py).

Its scratch worktree `.merge/` names the repository it belongs to by absolute path: a copy's
would make unions and replays in the original's object store, and the copy's best would then
name commits its own repository lacks (workers fail with "reference is not a tree")."""

from __future__ import annotations

import shutil
from pathlib import Path

from coordinator.service import Coordinator
from swarm.core import gitops
from tests.test_coordinator_inprocess import Driver

__all__: list[str] = []


def test_a_copied_run_merges_in_its_own_repository(tmp_path: Path) -> None:
    original = Driver(tmp_path)
    parent = original.coord.state.current_best.commit
    first, bundle = original.craft("w1", {"train.py": [("A = 1.0", "A = 2.0")]})
    assert original.coord.pool.keep_trial("t1", first.commit, bundle)
    second, bundle = original.craft("w1", {"train.py": [("B = 1.0", "B = 0.5")]}, parent=parent)
    assert original.coord.pool.keep_trial("t2", second.commit, bundle)
    original.coord.close()
    copy = tmp_path / "copy"
    shutil.copytree(original.run_dir, copy)
    shutil.rmtree(original.run_dir)  # moved, not only copied
    coordinator = Coordinator(original.config, copy, "s2", resume=True)
    try:
        merged = coordinator.pool.union([(first.commit, parent), (second.commit, parent)], parent,
                                        "union", "refs/swarm/unions/test")
        assert merged.included == (0, 1) and merged.commit is not None
        assert gitops.open_repo(copy / "repo").commit(merged.commit).parents[0].hexsha == parent
        assert (copy / ".merge" / ".git").read_text().startswith(f"gitdir: {copy / 'repo' / '.git'}")
    finally:
        coordinator.close()
