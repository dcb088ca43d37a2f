"""The one client for calls to the coordinator actor, used by the driver and by every worker.

Every call rides out a coordinator that Ray is restarting (its methods are safe to repeat)
under one retry policy (`swarm.core.retry`): back-off with jitter, then a deadline. A
coordinator that died for good raises `CoordinatorLost` at once; one that does not answer
until the deadline raises `CoordinatorUnreachable`, naming the call.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError

from coordinator.status import RunStatus
from swarm.core.errors import CoordinatorLost, CoordinatorUnreachable
from swarm.core.retry import ONCE, RetriesExhausted, RetryPolicy, retried
from swarm.core.values import (
    Admission, CandidateInfo, ContextFile, Cost, Placement, TrialOutcome, WorkerSite, WorkUnit,
)

__all__ = ["CoordinatorClient", "WORKER_CALLS", "DRIVER_CALLS", "RESUME_HINT"]

# A worker's call may wait long behind a busy coordinator; a hung one is tried again.
WORKER_CALLS = RetryPolicy(attempt_timeout_s=300.0, deadline_s=120.0)
DRIVER_CALLS = RetryPolicy(attempt_timeout_s=30.0, deadline_s=120.0, first_delay_s=0.5)
RESUME_HINT = "nothing it recorded is lost: continue with `swarm run CONFIG --resume`"


class CoordinatorClient:
    """A coordinator actor handle with the coordinator's methods, retried. It pickles with its
    handle, so the driver hands one to each worker it starts."""

    def __init__(self, handle: Any, policy: RetryPolicy = WORKER_CALLS) -> None:
        self.handle = handle
        self.policy = policy

    def call(self, method: str, *args: Any, policy: RetryPolicy | None = None) -> Any:
        chosen = policy or self.policy

        def attempt(timeout_s: float) -> Any:
            try:
                return ray.get(getattr(self.handle, method).remote(*args), timeout=timeout_s)
            except ActorDiedError as exc:  # max_restarts=-1: dead means dead for good
                raise CoordinatorLost(f"the coordinator died ({method}: "
                                      f"{' '.join(str(exc).split())[:200]}); {RESUME_HINT}") from None
        try:
            return retried(attempt, (RayActorError, GetTimeoutError), chosen)
        except RetriesExhausted as exc:
            raise CoordinatorUnreachable(
                f"the coordinator did not answer {method} ({exc}); {RESUME_HINT}") from None

    def tell(self, method: str, *args: Any, timeout_s: float = 10.0) -> None:
        """A call repeated on the driver's next poll anyway: a slow coordinator is no error."""
        try:
            self.call(method, *args, policy=ONCE(timeout_s))
        except CoordinatorUnreachable:
            pass

    # -- what workers call ----------------------------------------------------------------

    def hello(self, worker_id: str, site: WorkerSite) -> dict[str, str]:
        result: dict[str, str] = self.call("hello", worker_id, site)
        return result

    def briefing(self) -> tuple[ContextFile, ...]:
        files: tuple[ContextFile, ...] = self.call("briefing")
        return files

    def next_work(self, worker_id: str, have: str | None, site: WorkerSite | None = None) -> WorkUnit:
        unit: WorkUnit = self.call("next_work", worker_id, have, site)
        return unit

    def begin_candidate(self, info: CandidateInfo) -> Admission:
        admission: Admission = self.call("begin_candidate", info)
        return admission

    def best_now(self, worker_id: str, have: str | None) -> tuple[str, bytes | None]:
        best: tuple[str, bytes | None] = self.call("best_now", worker_id, have)
        return best

    def report(self, outcome: TrialOutcome) -> None:
        self.call("report", outcome)

    def proposal_failed(self, worker_id: str, reason: str, cost: Cost = Cost()) -> None:
        self.call("proposal_failed", worker_id, reason, cost)

    # -- what the driver calls ------------------------------------------------------------

    def status(self, last: RunStatus | None = None) -> RunStatus | None:
        """The coordinator's status; `last` while it restarts (it rebuilds from the ledger)."""
        try:
            status: RunStatus = self.call("status", policy=ONCE(30.0))
            return status
        except CoordinatorUnreachable:
            return last

    def worker_lost(self, worker_id: str, reason: str) -> None:
        self.call("worker_lost", worker_id, reason, policy=DRIVER_CALLS)

    def place(self, worker_id: str, placement: Placement) -> None:
        self.call("place", worker_id, placement, policy=DRIVER_CALLS)
