"""Whether a run's driver is still there: its heartbeat file, and what a status reader makes of
it. No Ray, no git.

The coordinator touches `driver.heartbeat` in the run directory whenever it hears from the
driver (it names the session on its first line); a session the driver ended cleanly has a
`session_ended` event in the ledger. A driver killed outright (SIGKILL, a lost node) takes its
workers, and with a local Ray instance the coordinator, with it: nothing records that, but the
heartbeat stops. So a reader of the run directory alone can tell a live run from a dead one.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from coordinator.state import SwarmState

__all__ = ["HEARTBEAT", "DRIVER_GONE_AFTER_S", "DriverPhase", "DriverState", "RUNNING", "Beat", "Heartbeat",
           "read_heartbeat", "driver_state", "silent_for"]

HEARTBEAT = "driver.heartbeat"
# The driver says which workers run on every poll (0.5 s), and waits at most 30 s for a busy
# coordinator; silence longer than that is a driver that is gone (the driver's own takeover
# of an orphaned coordinator waits as long).
DRIVER_GONE_AFTER_S = 30.0
_BEAT_EVERY_S = 2.0  # touching the file on every poll would be a write every 0.5 s

DriverPhase = Literal["running", "gone", "ended", "unknown"]


@dataclass(frozen=True)
class DriverState:
    """running: heard from lately; gone: not heard from since `since`, no clean end recorded
    (its trials in flight are recorded lost when the run is resumed); ended: its session ended
    cleanly at `since`, for `reason`; unknown: the run directory keeps no heartbeat of it."""

    phase: DriverPhase
    since: float | None = None
    reason: str = ""


RUNNING = DriverState("running")  # what the live coordinator's driver is, while it calls


@dataclass(frozen=True)
class Beat:
    session: str
    at: float  # when the coordinator last heard from the driver (the file's mtime)


class Heartbeat:
    """The coordinator's side: `beat()` on every word from the driver, written at most every
    couple of seconds."""

    def __init__(self, run_dir: Path, session: str) -> None:
        self.path = run_dir / HEARTBEAT
        self.session = session
        self._write()
        self._last = time.monotonic()

    def beat(self) -> None:
        now = time.monotonic()
        if now - self._last < _BEAT_EVERY_S:
            return
        try:
            os.utime(self.path)
        except FileNotFoundError:  # removed by hand: a live run says so again
            self._write()
        self._last = now

    def _write(self) -> None:
        scratch = self.path.with_name(HEARTBEAT + ".tmp")
        scratch.write_text(f"{self.session}\n")
        os.replace(scratch, self.path)  # a reader never sees it half written


def read_heartbeat(run_dir: Path) -> Beat | None:
    path = run_dir / HEARTBEAT
    try:
        session = path.read_text().strip()
        return Beat(session, path.stat().st_mtime)
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def driver_state(state: SwarmState, beat: Beat | None, now: float) -> DriverState:
    """What the ledger and the heartbeat say of the latest session's driver."""
    if not state.sessions:
        return DriverState("unknown")
    session = state.sessions[-1]
    if end := state.session_ends.get(session):
        return DriverState("ended", end.ts, end.reason)
    if beat is None or beat.session != session:
        return DriverState("unknown")
    return silent_for(now - beat.at, now)


def silent_for(seconds: float, now: float) -> DriverState:
    """A driver last heard from `seconds` ago (the live coordinator's own count)."""
    if seconds > DRIVER_GONE_AFTER_S:
        return DriverState("gone", now - seconds)
    return DriverState("running", now - seconds)
