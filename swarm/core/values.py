"""The values that travel between workers, the coordinator, the ledger and the shell. Pure.

One vocabulary for a trial's kind, status and verdict: the words the ledger records are the
words the decisions return and the reports print.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "TrialKind", "TrialStatus", "Verdict", "Refusal", "EVALUATED_STATUSES", "FAILED_STATUSES",
    "Cost", "Placement", "WorkerSite", "TrialDigest", "WorkUnit", "CandidateInfo", "Admission",
    "TrialOutcome", "ContextFile",
]

# baseline: a re-run of best (noise); candidate: a proposed change; confirm: a re-run of a promising trial.
TrialKind = Literal["baseline", "candidate", "confirm"]

TrialStatus = Literal[
    "ok", "crash", "timeout", "oom", "limit", "out_of_scope", "guard_failed", "no_metric",
    "duplicate", "stale_conflict", "lost",
]

# promising: beat best once, waits for its confirmation or a union; accepted: became best;
# merged: became best as a part of a union; rebased: beat an older best and was replayed onto
# the newer one, to be run there; stale_conflict: that replay (or its union) conflicted;
# discard / unconfirmed: did not (or no longer) beat the margin.
Verdict = Literal["promising", "accepted", "merged", "discard", "unconfirmed", "rebased", "stale_conflict"]

# Why the coordinator refuses to run an announced candidate.
Refusal = Literal["duplicate", "stop"]

# Statuses that cost an evaluation (the others were refused before running).
EVALUATED_STATUSES: frozenset[str] = frozenset(
    {"ok", "crash", "timeout", "oom", "limit", "guard_failed", "no_metric"})
FAILED_STATUSES: frozenset[str] = EVALUATED_STATUSES - {"ok"}  # it ran, and broke


@dataclass(frozen=True)
class Cost:
    """What proposing cost: tokens in and out, and dollars. Costs add."""

    tokens_in: int = 0
    tokens_out: int = 0
    usd: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.tokens_in + other.tokens_in, self.tokens_out + other.tokens_out,
                    self.usd + other.usd)

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


@dataclass(frozen=True)
class Placement:
    """Where the driver started a worker. The coordinator trusts this over the worker's own
    word: a volunteer's worker runs code its owner may have changed."""

    node: str = ""  # the Ray node id, shortened
    volunteer: bool = False
    hardware: str = ""  # the node's accelerator class when Ray knows it, else ""


@dataclass(frozen=True)
class WorkerSite:
    """Where a worker says it runs: shown by `swarm status`, and its hardware class measured."""

    hardware: str = ""
    host: str = ""
    node: str = ""
    pid: int = 0
    gpus: str = ""  # the GPU ids Ray gave it, comma-separated
    root: str = ""  # its clone's directory


@dataclass(frozen=True)
class TrialDigest:
    """One line of what the swarm tried, shown to proposers so nobody repeats what failed or
    what another worker is trying now (status "running")."""

    trial: str
    worker: str
    hypothesis: str
    status: TrialStatus | Literal["running"]
    metric: float | None
    verdict: Verdict | None
    feedback: str = ""  # the start of what its checks said (SWARM_FEEDBACK_FILE)


@dataclass(frozen=True)
class WorkUnit:
    """The coordinator's answer to a worker that asks what to do next."""

    action: Literal["propose", "evaluate", "wait", "stop"]
    best_commit: str
    trial_id: str | None = None  # set for 'evaluate'
    kind: TrialKind | None = None  # set for 'evaluate'
    commit: str | None = None  # 'evaluate': the commit to run; 'propose': the parent
    bundle: bytes | None = None  # git objects the worker may lack; None when it has them all
    recent: tuple[TrialDigest, ...] = ()  # 'propose': what the swarm tried lately
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
    cost: Cost = Cost()


@dataclass(frozen=True)
class Admission:
    """The coordinator's answer to an announced candidate: its trial id, and why it must not
    run (None: run it). A refused duplicate still has a trial id: it is recorded."""

    trial_id: str | None
    refusal: Refusal | None = None


@dataclass(frozen=True)
class ContextFile:
    """A file the config hands every proposer (proposer.context), as the run recorded it."""

    name: str
    text: str


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
    isolated: bool | None = None  # whether its commands ran in the jail (None: none ran)
    feedback: str = ""  # what its commands wrote to SWARM_FEEDBACK_FILE for the proposer
