"""What the driver does after each poll, given how workers ended and what the coordinator says.
Pure: the driver (`swarm/shell/driver.py`) carries the moves out, as it does `placement.plan`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["WorkerEnd", "Supervision", "Moves", "start", "step", "interrupted", "failure"]


@dataclass(frozen=True)
class WorkerEnd:
    """How one worker's run() ended."""

    worker_id: str
    error: str | None = None  # None: it went home when the coordinator said stop
    coordinator_gone: bool = False  # its error says the coordinator died for good
    node_alive: bool = True  # a worker on a live node crashed; one whose node left did not


@dataclass(frozen=True)
class Supervision:
    """The driver's state from one poll to the next."""

    crashes_left: int  # workers that crash on a live node count against this replacement budget
    stopping: bool = False  # Ctrl-C once: no new work; trials in flight finish
    last_error: str = ""


@dataclass(frozen=True)
class Moves:
    lost: tuple[tuple[str, str], ...] = ()  # (worker, reason): tell the coordinator its trials are lost
    refill: int | None = None  # start up to this many workers where there is room; None: not now
    coordinator_gone: bool = False  # a worker found the coordinator dead for good: give up
    done: bool = False  # the session is over


def start(replacements: int | None, initial_count: int | None, max_workers: int | None) -> Supervision:
    """Crashes a run survives by starting new workers: 2 per configured worker by default."""
    budget = 2 * (initial_count or max_workers or 4) if replacements is None else replacements
    return Supervision(crashes_left=budget)


def step(state: Supervision, ended: list[WorkerEnd], running: int, stop_reason: str | None,
         look_due: bool) -> tuple[Supervision, Moves]:
    """`running`: workers still running once `ended` are gone; `stop_reason`: the coordinator's,
    polled after they ended (a worker sent home means the run is ending, and refilling on an
    older status would start a new worker in its slot); `look_due`: time to look for nodes."""
    lost, crashes, last_error = [], 0, state.last_error
    for end in ended:
        if end.error is None:
            continue
        if end.coordinator_gone:
            return state, Moves(coordinator_gone=True)
        lost.append((end.worker_id, f"worker died: {end.error}"))
        crashes += end.node_alive
        last_error = end.error
    state = replace(state, crashes_left=state.crashes_left - crashes, last_error=last_error)
    winding_down = state.stopping or bool(stop_reason)
    refill = max(state.crashes_left, 0) if look_due and not winding_down else None
    done = running == 0 and (winding_down or state.crashes_left <= 0)
    return state, Moves(tuple(lost), refill, done=done)


def interrupted(state: Supervision) -> Supervision:
    """The first Ctrl-C: no new work, trials in flight finish (the second abandons them)."""
    return replace(state, stopping=True)


def failure(state: Supervision, final_stop_reason: str | None) -> str | None:
    """Why the session ended badly: every worker died and no replacement was left."""
    if final_stop_reason or state.stopping:
        return None
    return (f"every worker died and the replacements ran out; the last error: {state.last_error}; "
            "see swarm.log")
