"""How far a run is through its budget, and when, at this session's pace, it will be spent.
Pure: the replayed state and the stopping rule in, figures out.

Each limit is counted as the stopping rule counts it (coordinator/decide.py): max_trials over
every evaluation of every session, hours over this session's wall clock, max_cost_usd over
every proposal's spend. The pace is this session's: a resumed run's earlier days say nothing
of the workers it has now.
"""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.state import SwarmState
from swarm.core.config import StopSpec
from swarm.core.values import EVALUATED_STATUSES

__all__ = ["Limit", "Budget", "budget_of"]


@dataclass(frozen=True)
class Limit:
    """One limit the config sets: what is used of it, and how long until it is reached."""

    name: str  # "trials", "hours" or "cost"
    used: float
    limit: float
    eta_s: float | None  # None: nothing spent yet this session, so no pace to go by

    @property
    def share(self) -> float:
        return min(self.used / self.limit, 1.0) if self.limit > 0 else 1.0


@dataclass(frozen=True)
class Budget:
    elapsed_s: float  # this session's running time
    limits: tuple[Limit, ...]  # only those the config sets, in the order trials, hours, cost

    @property
    def eta_s(self) -> float | None:
        """Until the first limit is reached (None: no limit set, or no pace known yet)."""
        known = [limit.eta_s for limit in self.limits if limit.eta_s is not None]
        return min(known) if known else None

    @property
    def first(self) -> Limit | None:
        """The limit that will be reached first."""
        known = [limit for limit in self.limits if limit.eta_s is not None]
        return min(known, key=lambda limit: limit.eta_s or 0.0) if known else None


def budget_of(state: SwarmState, stop: StopSpec, session_start: float, now: float) -> Budget:
    elapsed = max(now - session_start, 0.0)
    session = state.sessions[-1] if state.sessions else ""
    mine = [t for t in state.trials.values() if t.session == session]
    limits = []
    if stop.max_trials is not None:
        # the pace from trials finished, not started: a start says nothing of how long it takes
        finished = sum(1 for t in state.trials.values() if t.status in EVALUATED_STATUSES)
        pace = sum(1 for t in mine if t.status in EVALUATED_STATUSES) / elapsed if elapsed > 0 else 0.0
        eta = _eta(stop.max_trials - finished, pace) if state.evaluations < stop.max_trials else 0.0
        limits.append(Limit("trials", state.evaluations, stop.max_trials, eta))
    if stop.hours is not None:
        limits.append(Limit("hours", elapsed / 3600, stop.hours, max(stop.hours * 3600 - elapsed, 0.0)))
    if stop.max_cost_usd is not None:
        spent = sum(t.cost.usd for t in mine)  # failed proposals' spend is the run's, not a trial's
        pace = spent / elapsed if elapsed > 0 else 0.0
        limits.append(Limit("cost", state.cost.usd, stop.max_cost_usd,
                            _eta(stop.max_cost_usd - state.cost.usd, pace)))
    return Budget(elapsed, tuple(limits))


def _eta(left: float, pace: float) -> float | None:
    """Seconds until `left` is spent at `pace` per second; None without a pace to go by."""
    if left <= 0:
        return 0.0
    return left / pace if pace > 0 else None
