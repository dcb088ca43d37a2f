"""What the next run should carry over: which kinds of change helped and which never did.

A change's kind is the names it touched: the assignments its diff changed when the diff is at
hand, else the UPPER_CASE constants its hypothesis names (mutate writes `DEPTH 4 -> 3`).
Pure: the diffs come in as text.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from coordinator.state import TrialRecord
from swarm.core.values import EVALUATED_STATUSES, FAILED_STATUSES
from swarm.shell.report.facts import RunFacts

__all__ = ["KindRecord", "change_kinds", "assigned_names", "tally_kinds", "lessons", "unhelpful_lessons"]

_CONSTANT = re.compile(r"\b[A-Z][A-Z0-9_]+\b")
_ASSIGNED = re.compile(r"^[+-]\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::[^=]*)?=(?!=)")
NEVER_HELPED_AFTER = 3  # tries with no acceptance before a kind is called unhelpful


@dataclass
class KindRecord:
    kind: str
    tried: int = 0
    accepted: int = 0
    failed: int = 0
    gains: list[float] = field(default_factory=list)  # judged improvements, positive = better


def assigned_names(diff: str) -> set[str]:
    """Names whose assignment lines a unified diff adds or removes."""
    return {m.group(1) for line in diff.splitlines()
            if not line.startswith(("+++", "---")) and (m := _ASSIGNED.match(line))}


def change_kinds(hypothesis: str, diff: str | None = None) -> frozenset[str]:
    names = assigned_names(diff) if diff else set()
    if not names:
        names = set(_CONSTANT.findall(hypothesis))
    return frozenset(names) or frozenset({"(unlabelled)"})


def tally_kinds(trials: list[TrialRecord], diffs: dict[str, str]) -> list[KindRecord]:
    """Per kind of change, over evaluated candidates; a change of two kinds counts for both."""
    records: dict[str, KindRecord] = defaultdict(lambda: KindRecord(""))
    for trial in trials:
        if trial.kind != "candidate" or trial.status not in EVALUATED_STATUSES:
            continue
        for kind in change_kinds(trial.hypothesis, diffs.get(trial.id)):
            record = records[kind]
            record.kind = kind
            record.tried += 1
            record.accepted += trial.verdict == "accepted"
            record.failed += trial.status in FAILED_STATUSES
            if trial.gain is not None:
                record.gains.append(trial.gain)
    return sorted(records.values(), key=lambda r: (-r.accepted, -r.tried, r.kind))


def lessons(facts: RunFacts, kinds: list[KindRecord]) -> list[str]:
    found = _helped(kinds) + unhelpful_lessons(facts, kinds)
    return found or ["Too few judged trials to tell what helps yet."]


def unhelpful_lessons(facts: RunFacts, kinds: list[KindRecord]) -> list[str]:
    """The lessons about what did not pay: kinds that never helped or broke the experiment,
    winners that were noise or went stale. CHANGELOG.md lists the helpful ones as its changes."""
    return _never_helped(kinds) + _broke(kinds) + _noise(facts) + _staleness(facts)


def _helped(kinds: list[KindRecord]) -> list[str]:
    helped = [k for k in kinds if k.accepted]
    if not helped:
        return []
    parts = [f"{k.kind} ({k.accepted} of {k.tried} accepted)" for k in helped[:8]]
    return ["Helped: " + ", ".join(parts) + "."]


def _never_helped(kinds: list[KindRecord]) -> list[str]:
    never = sorted((k for k in kinds if not k.accepted and k.tried >= NEVER_HELPED_AFTER),
                   key=lambda k: -k.tried)
    if not never:
        return []
    parts = [f"{k.kind} ({k.tried} tries{_median(k.gains)})" for k in never[:8]]
    return ["Never helped: " + ", ".join(parts) + ". Try something else before these again."]


def _broke(kinds: list[KindRecord]) -> list[str]:
    broke = [k for k in kinds if k.tried >= 2 and k.failed * 2 >= k.tried]
    if not broke:
        return []
    parts = [f"{k.kind} ({k.failed} of {k.tried} failed)" for k in broke[:8]]
    return ["Often broke the experiment: " + ", ".join(parts) + "."]


def _noise(facts: RunFacts) -> list[str]:
    unconfirmed = facts.by_status.get("unconfirmed", 0)
    if not unconfirmed or facts.noise is None:
        return []
    return [f"{unconfirmed} candidate(s) looked better on one run and failed confirmation: "
            f"single runs mislead at this noise (std {facts.noise:.4g} of {facts.metric})."]


def _staleness(facts: RunFacts) -> list[str]:
    rebased, conflicts = facts.by_status.get("rebased", 0), facts.by_status.get("stale_conflict", 0)
    if not rebased and not conflicts:
        return []
    return [f"{rebased} winner(s) went stale and were rebased onto a newer best, {conflicts} "
            "conflicted with it: changes that touch the same lines race each other."]


def _median(gains: list[float]) -> str:
    return f", median gain {statistics.median(gains):+.4g}" if gains else ""
