"""The one interface every proposer kind implements (mutate, llm, agent)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

__all__ = ["ProposalContext", "Proposal", "ProposalFailure", "Proposer"]


@dataclass(frozen=True)
class ProposalContext:
    """What a proposer may look at before it proposes one change."""

    program: str  # the target's program.md: the human's instructions to agents
    files: dict[str, str]  # every editable file of the baseline, path -> text
    recent: list[dict] = field(default_factory=list)  # digest of recent trials of all workers
    checkout: Path | None = None  # a scratch working tree at the baseline, for agent CLIs
    editable: tuple[str, ...] = ()  # globs of the paths a change may touch
    readonly: tuple[str, ...] = ()  # globs it must never touch
    winners: list[dict] = field(default_factory=list)  # latest accepted changes: hypothesis, metric, diff
    last_failure: str | None = None  # this worker's own last trial, if it failed: status and log tail


@dataclass(frozen=True)
class Proposal:
    """One focused change: the new full text of each file it changes."""

    files: dict[str, str]
    hypothesis: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class ProposalFailure:
    """A proposer that could not produce a change says why; the worker carries on."""

    reason: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0


class Proposer(Protocol):
    def propose(self, context: ProposalContext) -> Proposal | ProposalFailure: ...
