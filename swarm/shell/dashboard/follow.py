"""Follows a run's ledger.jsonl as it grows: reads from a byte offset, applies the new events
to a SwarmState, and says which trials they changed.

A last line without its newline is being appended (or was torn by a crash): it is left for the
next read. A ledger that shrank or was replaced (a copy put in its place) is read again from
its start, and the caller is told to start over.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from coordinator.state import SwarmState
from swarm.core.events import EventError, Judged, LedgerEvent, TrialFinished, TrialStarted, parse_event
from swarm.core.ledger import bad_line

__all__ = ["Change", "LedgerFollower", "trials_named"]


@dataclass(frozen=True)
class Change:
    """What one read found: new events, the trials they touched, and whether the state was
    rebuilt from the start (the ledger was replaced or shrank)."""

    events: int
    trials: frozenset[str]
    reset: bool = False


@dataclass
class LedgerFollower:
    path: Path
    state: SwarmState = field(default_factory=SwarmState)
    events: list[LedgerEvent] = field(default_factory=list)
    offset: int = 0  # bytes read and applied: always the end of a whole line
    lines: int = 0
    _identity: tuple[int, int] | None = None  # (device, inode) of the file read
    _head: bytes = b""  # its first bytes and the one before `offset`: a copy over it changes them

    def poll(self) -> Change:
        """Reads what was appended since the last poll. A bad line is the ledger's one error
        (RunDirError naming the file and the line), as `swarm status` gives it."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return Change(0, frozenset())
        identity = (stat.st_dev, stat.st_ino)
        reset = False
        with open(self.path, "rb") as file:
            if self._identity is not None and (identity != self._identity or stat.st_size < self.offset
                                               or self._mark(file) != self._head):
                self._start_over()
                reset = True
            self._identity = identity
            if stat.st_size == self.offset:
                return Change(0, frozenset(), reset)
            file.seek(self.offset)
            data = file.read(stat.st_size - self.offset)
        whole = data.rfind(b"\n") + 1  # a last line without its newline waits for the next read
        touched: set[str] = set()
        count = 0
        for line in data[:whole].splitlines(keepends=True):
            if line.strip():
                try:
                    event = parse_event(line)
                    self.state.apply(event)
                except EventError as exc:  # not read past: the same error until it is mended
                    raise bad_line(self.path, self.lines + 1, str(exc)) from None
                self.events.append(event)
                touched |= trials_named(event, self.state)
                count += 1
            self.lines += 1
            self.offset += len(line)
        with open(self.path, "rb") as file:
            self._head = self._mark(file)
        return Change(count, frozenset(touched), reset)

    def _mark(self, file: BinaryIO) -> bytes:
        file.seek(0)
        head = file.read(min(self.offset, 256))
        if self.offset:
            file.seek(self.offset - 1)
            head += file.read(1)
        return head

    def _start_over(self) -> None:
        self.state, self.events, self.offset, self.lines, self._head = SwarmState(), [], 0, 0, b""


def trials_named(event: LedgerEvent, state: SwarmState) -> set[str]:
    """The trials an event changes: its own, and a union's parts when it is accepted (they
    become `merged`)."""
    if isinstance(event, (TrialStarted, TrialFinished)):
        return {event.trial}
    if isinstance(event, Judged):
        trial = state.trials.get(event.trial)
        return {event.trial, *(trial.parts if trial and event.verdict == "accepted" else ())}
    return set()
