"""The one interface every proposer kind implements (mutate, llm, agent)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from swarm.core.values import ContextFile, Cost, TrialDigest

__all__ = ["AcceptedChange", "ProposalContext", "Proposal", "ProposalFailure", "Proposer"]


@dataclass(frozen=True)
class AcceptedChange:
    """One of the latest changes on best's lineage, as a proposer is shown it."""

    hypothesis: str
    metric: str  # its Swarm-Metric trailers, e.g. "val_bpb=1.234" or "pass_rate=0.9, tokens=120"; "" where none
    diff: str


@dataclass(frozen=True)
class ProposalContext:
    """What a proposer may look at before it proposes one change."""

    program: str  # the target's program.md: the human's instructions to agents
    files: dict[str, str]  # every editable file of the baseline, path -> text
    recent: tuple[TrialDigest, ...] = ()  # what the swarm's workers tried lately
    checkout: Path | None = None  # a scratch working tree at the baseline, for agent CLIs
    editable: tuple[str, ...] = ()  # globs of the paths a change may touch
    readonly: tuple[str, ...] = ()  # globs it must never touch
    winners: tuple[AcceptedChange, ...] = ()  # the latest accepted changes, newest first
    last_failure: str | None = None  # this worker's own last trial, if it failed: status and log tail
    feedback: str = ""  # what the checks said of this worker's own last change (SWARM_FEEDBACK_FILE)
    briefing: tuple[ContextFile, ...] = ()  # proposer.context: e.g. an earlier run's CHANGELOG.md


@dataclass(frozen=True)
class Proposal:
    """One focused change: the new full text of each file it changes."""

    files: dict[str, str]
    hypothesis: str
    cost: Cost = Cost()


@dataclass(frozen=True)
class ProposalFailure:
    """A proposer that could not produce a change says why; the worker carries on."""

    reason: str
    cost: Cost = Cost()


class Proposer(Protocol):
    def propose(self, context: ProposalContext) -> Proposal | ProposalFailure: ...
