"""What the coordinator's service needs of a run directory and of the pool. The real ones
(`rundir.RunDirectory`, `pool.Pool`) write to disk and to git; the simulator's
(`bench/simulate.py`) keep everything in memory, so that the same decisions run in virtual time.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from coordinator.state import SwarmState
from swarm.core.events import LedgerEvent

__all__ = ["RunRecord", "PoolStore", "Replayed", "Merged"]


class Replayed(Protocol):
    """A change replayed onto a newer best: its commit and tree, or None where it conflicted."""

    @property
    def commit(self) -> str | None: ...

    @property
    def tree(self) -> str | None: ...


class Merged(Protocol):
    """Changes merged onto a best: commit and tree (None when none merged), and which parts
    (by their index in the request) went in and which conflicted."""

    @property
    def commit(self) -> str | None: ...

    @property
    def tree(self) -> str | None: ...

    @property
    def included(self) -> tuple[int, ...]: ...

    @property
    def conflicted(self) -> tuple[int, ...]: ...  # with best itself

    @property
    def clashed(self) -> tuple[int, ...]: ...  # only with a part before it


class RunRecord(Protocol):
    def record(self, event: LedgerEvent) -> LedgerEvent: ...
    def one_sync(self) -> AbstractContextManager[None]: ...  # what is recorded inside: durable at its end
    def write_log(self, trial_id: str, text: str) -> None: ...
    def write_results(self, state: SwarmState) -> None: ...
    def close(self) -> None: ...


class PoolStore(Protocol):
    def show_best(self, commit: str) -> None: ...
    def keep_trial(self, trial_id: str, commit: str, bundle: bytes | None) -> bool: ...
    def changed_paths(self, parent: str, commit: str) -> list[str]: ...
    def commit_best(self, tree: str, parent: str, message: str) -> str: ...
    def replay(self, commit: str, onto: str, message: str, ref: str) -> Replayed: ...
    def union(self, parts: list[tuple[str, str]], onto: str, message: str, ref: str) -> Merged: ...
    def keep(self, ref: str, commit: str) -> None: ...
    def bundle(self, commit: str, have: str | None) -> bytes | None: ...
    def open_merge_worktree(self, at: str) -> None: ...
    def close(self) -> None: ...
