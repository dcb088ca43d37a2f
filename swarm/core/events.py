"""The ledger's events: one model per kind, parsed once when a ledger is read. Pure.

Each line of ledger.jsonl is one of these as JSON (`ts` first, then `event`, the kind). An
unknown kind, a missing field or a value of the wrong type is an `EventError` that says what
was wrong; the ledger reader adds the file and line.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from swarm.core.values import Cost, TrialKind, TrialStatus, Verdict

__all__ = [
    "EventError", "RunStarted", "SessionStarted", "SessionEnded", "TrialStarted", "TrialFinished",
    "Judged", "ProposalFailed", "LedgerEvent", "EVENT_KINDS", "parse_event", "event_json", "cost_of",
]


class EventError(ValueError):
    """A ledger line that is not a complete event of a known kind."""


class _Event(BaseModel):
    # extra="forbid": a line with a field no version of the swarm writes was not written by it.
    # A non-finite float is written as Infinity/NaN, which reads back, not as null, which would
    # make the line unreadable where the field is not optional.
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")

    ts: float = 0.0  # set by the ledger when it appends the event


class RunStarted(_Event):
    """The first event of a run: the target as given, and the config it was started with."""

    event: Literal["run_started"] = "run_started"
    commit: str
    tree: str
    readonly_hashes: dict[str, str] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)  # as recorded, checked when resumed
    briefing: dict[str, str] = Field(default_factory=dict)  # proposer.context: each file's text, as read then


class SessionStarted(_Event):
    event: Literal["session_started"] = "session_started"
    session: str
    gpus_per_worker: float | None = None  # a resumed run may change it; GPU-hours follow


class SessionEnded(_Event):
    """The driver ended its session cleanly (any trial still in flight was recorded lost first).
    A session without one ended with its driver killed, or is still running."""

    event: Literal["session_ended"] = "session_ended"
    session: str
    reason: str = ""


class TrialStarted(_Event):
    event: Literal["trial_started"] = "trial_started"
    trial: str
    kind: TrialKind
    worker: str
    commit: str
    tree: str
    parent: str  # the best it was proposed on (candidates) or the best it re-runs
    session: str
    of: str | None = None  # confirm: the trial it re-runs; rebased candidate: the stale winner
    parts: list[str] | None = None  # a union: the trials whose changes it combines
    hypothesis: str = ""
    hardware: str = ""
    volunteer: bool = False
    node: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0


class TrialFinished(_Event):
    event: Literal["trial_finished"] = "trial_finished"
    trial: str
    status: TrialStatus
    metric: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    seconds: float = 0.0
    hardware: str | None = None  # replaces the class the trial started with (tests' ledgers)
    reported_hardware: str | None = None  # the worker's own word, kept for the record only
    reason: str = ""
    isolated: bool | None = None  # its commands ran in the jail (None: not recorded, or nothing ran)
    feedback: str = ""  # what its checks said for the proposer (SWARM_FEEDBACK_FILE), capped


class Judged(_Event):
    """A verdict on a trial, with the numbers it rests on."""

    event: Literal["verdict"] = "verdict"
    trial: str
    verdict: Verdict
    reference: float = 0.0  # the parent's mean on the trial's class
    required: float = 0.0  # the gain it had to beat
    improvement: float | None = None  # its gain (positive: better)
    runs: int = 0
    reason: str = ""
    alone: bool | None = None  # promising: no union will take it (it races alone from now on)
    best_commit: str | None = None  # accepted: the new best commit
    commit: str | None = None  # rebased: the replayed commit, its tree and the best it is on
    tree: str | None = None
    parent: str | None = None


class ProposalFailed(_Event):
    event: Literal["proposal_failed"] = "proposal_failed"
    worker: str
    reason: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0


def cost_of(event: TrialStarted | ProposalFailed) -> Cost:
    """What proposing cost, as the event records it (flat fields, for ledgers of any version)."""
    return Cost(event.tokens_in, event.tokens_out, event.cost_usd)


LedgerEvent = Annotated[
    RunStarted | SessionStarted | SessionEnded | TrialStarted | TrialFinished | Judged | ProposalFailed,
    Field(discriminator="event"),
]
EVENT_KINDS: tuple[str, ...] = ("run_started", "session_started", "session_ended", "trial_started",
                                "trial_finished", "verdict", "proposal_failed")
_ADAPTER: TypeAdapter[LedgerEvent] = TypeAdapter(LedgerEvent)


def parse_event(line: str | bytes | dict[str, Any]) -> LedgerEvent:
    """One event from its JSON text (or the decoded object); EventError says what is wrong."""
    try:
        if isinstance(line, dict):
            return _ADAPTER.validate_python(line)
        return _ADAPTER.validate_json(line)
    except ValidationError as exc:
        raise EventError(_describe(exc)) from None


def event_json(event: LedgerEvent) -> str:
    """The event as one line of compact JSON; fields left unset (None) are left out."""
    try:
        return event.model_dump_json(exclude_none=True)
    except PydanticSerializationError:
        # A lone surrogate (an LLM's "\ud800" escape, say) cannot be written as UTF-8; the event
        # is recorded with U+FFFD in its place rather than not at all.
        fixed = _ADAPTER.validate_python(_scrubbed(event.model_dump()))
        return fixed.model_dump_json(exclude_none=True)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_scrubbed(k): _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    return value


def _describe(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"][1:]) or "the event"
    kind = error["loc"][0] if error["loc"] else "?"
    if error["type"] == "json_invalid":
        return f"not a JSON event ({error['msg']})"
    if error["type"] == "union_tag_invalid":
        return (f"unknown event kind {error['input'].get('event')!r}; "
                f"a ledger holds only {', '.join(EVENT_KINDS)}")
    if error["type"] == "union_tag_not_found":
        return "not an event: it has no 'event' field naming its kind"
    if error["type"] == "missing":
        return f"a {kind} event without its '{where}' field"
    if error["type"] == "extra_forbidden":
        return f"a {kind} event with a field no swarm writes: '{where}'"
    if error["type"] == "model_type" or error["type"] == "dict_type":
        return "not an event: expected a JSON object"
    return f"a {kind} event whose '{where}' is {error['input']!r}: {error['msg']}"
