"""What `swarm run` says when it stops because the target or the proposer is broken: the
coordinator's reason, then the last lines of the latest failed trial's log that explain it."""

from __future__ import annotations

from pathlib import Path

from coordinator.status import RunStatus

__all__ = ["failed_stop_lines", "TAIL_LINES"]

TAIL_LINES = 12


def failed_stop_lines(status: RunStatus, run_dir: Path, tail_lines: int = TAIL_LINES) -> list[str]:
    """The stop reason, then (when its log is here) the end of the latest failure's log."""
    lines = [status.stop_reason or "the run stopped: see swarm.log"]
    failure = status.latest_failure
    log = run_dir / "logs" / f"{failure.trial}.log" if failure else None
    if log is None or not log.is_file():
        return lines
    tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-tail_lines:]
    if tail:
        lines.append(f"the end of {log}:")
        lines += [f"    {line}" for line in tail]
    return lines
