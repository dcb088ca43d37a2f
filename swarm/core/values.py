"""The values that travel between workers, the coordinator and the ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "TrialKind", "TrialStatus", "EVALUATED_STATUSES", "WorkUnit", "CandidateInfo", "TrialOutcome",
]

# baseline: a re-run of best (noise); candidate: a proposed change; confirm: a re-run of a promising trial.
TrialKind = Literal["baseline", "candidate", "confirm"]

TrialStatus = Literal[
    "ok", "crash", "timeout", "out_of_scope", "guard_failed", "no_metric",
    "duplicate", "stale_conflict", "lost",
]

# Statuses that cost an evaluation (the others were refused before running).
EVALUATED_STATUSES = frozenset({"ok", "crash", "timeout", "guard_failed", "no_metric"})
FAILED_STATUSES = EVALUATED_STATUSES - {"ok"}  # it ran, and broke


@dataclass(frozen=True)
class WorkUnit:
    """The coordinator's answer to a worker that asks what to do next."""

    action: Literal["propose", "evaluate", "wait", "stop"]
    best_commit: str
    trial_id: str | None = None  # set for 'evaluate'
    kind: TrialKind | None = None  # set for 'evaluate'
    commit: str | None = None  # 'evaluate': the commit to run; 'propose': the parent
    bundle: bytes | None = None  # git objects the worker may lack; None when it has them all
    recent: list[dict] = field(default_factory=list)  # trial digest for proposers
    avoid: frozenset[str] = frozenset()  # 'propose': trees already tried on the parent
    wait_s: float = 0.0


@dataclass(frozen=True)
class CandidateInfo:
    """A committed proposal, announced before it is evaluated so duplicates cost nothing."""

    worker_id: str
    parent: str
    commit: str
    tree: str  # same parent and same tree: the same change (how duplicates are found)
    hypothesis: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class TrialOutcome:
    """What a worker measured for one trial. Its metric comes from the target's result block."""

    trial_id: str
    worker_id: str
    status: TrialStatus
    metric: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    hardware: str = "unknown"
    reason: str = ""  # why it is not 'ok', in one line
    log: str = ""  # the capped experiment log
    bundle: bytes | None = None  # the candidate's commit, for candidates
