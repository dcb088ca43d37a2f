"""The driver's stop signals: SIGINT (Ctrl-C) and SIGTERM (what `ray job stop`, Kubernetes and
systemd send) mean the same.

The first asks for a graceful stop: the driver sees it at its next poll, starts no new work and
waits for the trials in flight. The second, of either kind, abandons them: it raises
KeyboardInterrupt wherever the driver is waiting, so that it cannot be held up by a slow call.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

__all__ = ["StopSignals", "stopping_message"]

_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


def stopping_message(name: str) -> str:
    """What the live display says after the first signal."""
    again = "Ctrl-C again" if name == "Ctrl-C" else f"{name} or Ctrl-C again"
    return f"{name}: finishing trials in flight ({again} to abandon them)"


class StopSignals:
    """Counts SIGINT and SIGTERM while installed (a context manager); the previous handlers,
    Ray's own SIGTERM handler among them, come back on exit. Install it after `ray.init`,
    which sets that handler (it exits at once, with 1)."""

    def __init__(self) -> None:
        self.received: list[str] = []  # "Ctrl-C" or "SIGTERM", in the order they came
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # Python allows no other
            for signum in _NAMES:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()

    @property
    def first(self) -> str | None:
        return self.received[0] if self.received else None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(_NAMES[signal.Signals(signum)])
        if len(self.received) > 1:
            raise KeyboardInterrupt
