"""ledger.jsonl: the append-only record of every decision, durable before it is acknowledged."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from swarm.core.errors import RunDirError
from swarm.core.events import EventError, LedgerEvent, RunStarted, event_json, parse_event

__all__ = ["Ledger", "read_events"]


class Ledger:
    """Appends one JSON object per line and fsyncs it, so an acknowledged event survives a crash."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(path)
        self._file = open(path, "a", encoding="utf-8")

    @classmethod
    def create(cls, path: Path, first: RunStarted) -> tuple[Ledger, RunStarted]:
        """A new ledger holding `first`, created atomically: never an empty ledger on disk.
        Returns the ledger and the event as written."""
        stamped = first.model_copy(update={"ts": round(time.time(), 3)})
        scratch = path.with_suffix(".jsonl.tmp")
        with open(scratch, "w", encoding="utf-8") as file:
            file.write(event_json(stamped) + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(scratch, path)
        return cls(path), stamped

    def append(self, event: LedgerEvent) -> LedgerEvent:
        """Writes the event with a timestamp; returns it as written."""
        stamped = _stamped(event)
        self._file.write(event_json(stamped) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        return stamped

    def close(self) -> None:
        self._file.close()


def _stamped(event: LedgerEvent) -> LedgerEvent:
    return event.model_copy(update={"ts": round(time.time(), 3)})


def read_events(path: Path) -> Iterator[LedgerEvent]:
    """Yields the events in order, each parsed once; a bad line (other than a torn last one)
    is an error naming the file, the line and what is wrong with it."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                yield parse_event(line)
            except EventError as exc:
                if not line.endswith("\n"):
                    return  # torn by a crash mid-append: never acknowledged, so not lost
                raise RunDirError(f"{path}:{number}: {exc}; the ledger is append-only: "
                                  "restore it from a copy") from None


def _drop_torn_tail(path: Path) -> None:
    # A crash mid-write can leave a last line without its newline; that event was never
    # acknowledged, so dropping it loses nothing that was promised.
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as file:
        file.truncate(keep)
