"""ledger.jsonl: the append-only record of every decision, durable before it is acknowledged."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from swarm.core.errors import RunDirError
from swarm.core.events import EventError, LedgerEvent, RunStarted, event_json, parse_event

__all__ = ["Ledger", "read_events", "numbered_events", "bad_line", "TornTail", "torn_tail"]


class Ledger:
    """Appends one JSON object per line and fsyncs it, so an acknowledged event survives a crash."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(path)
        self._file = open(path, "a", encoding="utf-8")
        self._deferred = 0  # depth of one_sync blocks open
        self._unsynced = False

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
        if self._deferred:
            self._unsynced = True
        else:
            os.fsync(self._file.fileno())
        return stamped

    @contextmanager
    def one_sync(self) -> Iterator[None]:
        """The events appended inside reach the disk with one fsync, when the block ends.

        For one call that records several events (a report: its result, then the verdicts it
        allows): each is written (flushed to the OS, so a crash of the process keeps it) before
        it is applied, and all are durable before the caller hears back, which is what
        acknowledging means. A machine that dies inside the block loses only events nobody
        was told of. One fsync instead of three per result (bench/coordinator_capacity.py).
        """
        self._deferred += 1
        try:
            yield
        finally:
            self._deferred -= 1
            if not self._deferred and self._unsynced:
                self._unsynced = False
                os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _stamped(event: LedgerEvent) -> LedgerEvent:
    return event.model_copy(update={"ts": round(time.time(), 3)})


def read_events(path: Path) -> Iterator[LedgerEvent]:
    """Yields the events in order, each parsed once; a bad line (other than a torn last one)
    is an error naming the file, the line and what is wrong with it."""
    for _number, event in numbered_events(path):
        yield event


def numbered_events(path: Path) -> Iterator[tuple[int, LedgerEvent]]:
    """The events with their line numbers, so that what replaying one finds wrong can be said
    of its line. Blank lines carry nothing and are skipped; a torn last line too (a reader may
    meet the line a live coordinator is appending, and a crash mid-append leaves one)."""
    if not path.exists():
        return
    with open(path, "rb") as file:  # bytes: a line that is not UTF-8 is a bad line, not a crash
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                yield number, parse_event(line)
            except EventError as exc:
                if not line.endswith(b"\n"):
                    return  # torn by a crash mid-append: never acknowledged, so not lost
                raise bad_line(path, number, str(exc)) from None


def bad_line(path: Path, number: int, what: str) -> RunDirError:
    """The one error for a ledger line that cannot be taken as it stands."""
    return RunDirError(f"{path}:{number}: {what}; the ledger is append-only: restore it from a copy")


@dataclass(frozen=True)
class TornTail:
    """A last line without its newline: an append a crash cut off, never acknowledged."""

    line: int
    size: int  # bytes
    kind: str | None  # the event kind and trial, where the part that survived names them
    trial: str | None

    def what(self) -> str:
        kind = f"a {self.kind} event" if self.kind else "an event of unreadable kind"
        return f"{self.size} bytes of {kind}" + (f" of trial {self.trial}" if self.trial else "")


def torn_tail(path: Path) -> TornTail | None:
    """The ledger's torn last line, if it has one (opening a `Ledger` drops it)."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, "rb") as file:
        tail = _last_line(file, path.stat().st_size)
        if tail.endswith(b"\n"):
            return None
        file.seek(0)
        line = 1 + sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))
    text = tail.decode("utf-8", "replace")
    kind, trial = _KIND.search(text), _TRIAL.search(text)
    return TornTail(line, len(tail), kind.group(1) if kind else None, trial.group(1) if trial else None)


_KIND = re.compile(r'"event"\s*:\s*"([a-z_]{1,40})"')
_TRIAL = re.compile(r'"trial"\s*:\s*"([A-Za-z0-9_.-]{1,40})"')


def _last_line(file: BinaryIO, size: int) -> bytes:
    """The file's last line, its newline included if it has one (read from the end: a ledger
    may hold 100,000 trials)."""
    end = size - 1  # a last newline ends the last line; it does not start a new one
    start, chunk = end, 1 << 16
    while start > 0:
        start = max(0, start - chunk)
        file.seek(start)
        found = file.read(end - start).rfind(b"\n")
        if found >= 0:
            start += found + 1
            break
    file.seek(start)
    return file.read()


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
