"""report.md: a run on one page. Pure: facts, diffs and lessons in, text out."""

from __future__ import annotations

import math
import time

from swarm.shell.report.facts import Change, RunFacts

__all__ = ["render_report", "MAX_DIFF_LINES"]

MAX_DIFF_LINES = 80  # per change: a page, not a patch file (the full diff is in repo/)
_STATUS_ORDER = ["keep", "discard", "unconfirmed", "rebased", "stale_conflict", "pending",
                 "baseline", "confirm", "crash", "timeout", "oom", "limit", "no_metric",
                 "guard_failed",
                 "out_of_scope", "duplicate", "lost"]


def render_report(facts: RunFacts, diffs: dict[str, str], lessons: list[str],
                  figures: list[str]) -> str:
    parts = [_title(facts), _headline(facts), _statuses(facts), _workers(facts),
             _changes(facts, diffs), _lessons(lessons), _figures(figures)]
    return "\n\n".join(p for p in parts if p) + "\n"


def _title(facts: RunFacts) -> str:
    span = (f"{_when(facts.started)} to {_when(facts.ended)}, {facts.sessions} session(s), "
            f"{facts.hours:.2f} h running" if facts.started else "no session recorded")
    return f"# {facts.name}: {facts.metric} ({facts.direction})\n\n{span}."


def _headline(facts: RunFacts) -> str:
    gain = facts.total_gain
    change = "-" if gain is None else f"{gain:+.6g} better than the baseline{_percent(facts)}"
    if gain is not None and gain < 0:
        change = f"{gain:+.6g} (worse than the baseline: no change was accepted that held)"
    best_from = f"trial {facts.best_trial}" if facts.best_trial else "the target as given"
    rows = [
        ("best", f"{facts.best.text()}, from {best_from} [{facts.best_commit[:7]}]"),
        ("baseline", facts.baseline.text()),
        ("change", change),
        ("accepted changes", str(len(facts.changes))),
        ("noise", "-" if facts.noise is None else f"{facts.noise:.6g} (pooled std of repeated runs)"),
        ("trials", f"{len(facts.trials)} finished, {facts.evaluated} evaluated"),
        ("trials/hour", f"{facts.per_hour:.1f} over the {facts.hours:.2f} h the swarm ran "
                        f"(every session), {len(facts.workers)} worker(s)"),
        ("GPU-hours", _gpu(facts)),
        ("LLM cost", _cost(facts)),
    ]
    rows[3:3] = [(name, _moved(facts, name)) for name in facts.tiebreaks if name in facts.best_metrics]
    if facts.heldout:
        rows.insert(3, ("does it generalise", _generalises(facts, facts.heldout)))
    return "## Headline\n\n| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def _moved(facts: RunFacts, name: str) -> str:
    was = facts.baseline_metrics.get(name)
    return f"{facts.best_metrics[name]:.6g}" + ("" if was is None else f" (baseline {was:.6g})")


def _generalises(facts: RunFacts, name: str) -> str:
    """The held-out metric beside the metric: a gain on the cases the proposers saw that the
    held-out cases do not share was learnt from those cases, not of the task."""
    was, now = facts.baseline_metrics.get(name), facts.best_metrics.get(name)
    if was is None or now is None:
        return f"not measured ({name} was not in the result blocks)"
    moved = f"{name} {was:.6g} -> {now:.6g}"
    held = now - was if facts.direction == "maximize" else was - now
    if not facts.changes:
        return f"{moved} (nothing was accepted)"
    if held > 0:
        return f"yes: {moved}, better on the held-out cases too"
    return f"no: {moved}, the gains on {facts.metric} did not carry over to the held-out cases"


def _percent(facts: RunFacts) -> str:
    if facts.total_gain is None or not facts.baseline.mean:
        return ""
    return f" ({100 * facts.total_gain / abs(facts.baseline.mean):.2f}%)"


def _gpu(facts: RunFacts) -> str:
    if facts.gpus_per_worker <= 0:
        return f"0 (a CPU run: {facts.worker_hours:.2f} worker-hours in experiments)"
    return (f"{facts.gpu_hours:.2f} in experiments ({facts.gpus_per_worker:g} GPU per worker, "
            f"{facts.worker_hours:.2f} worker-hours)")


def _cost(facts: RunFacts) -> str:
    if not facts.cost_usd and not facts.tokens_in:
        return "$0 (no paid proposer)"
    per = f", ${facts.cost_usd / len(facts.changes):.4f} per accepted change" if facts.changes else ""
    failed = f", {facts.proposal_failures} failed proposals" if facts.proposal_failures else ""
    return (f"${facts.cost_usd:.4f} ({facts.tokens_in:,} tokens in, {facts.tokens_out:,} out"
            f"{per}{failed})")


def _statuses(facts: RunFacts) -> str:
    if not facts.by_status:
        return "## Trials by status\n\nNo trial has finished."
    order = sorted(facts.by_status, key=lambda s: (_STATUS_ORDER.index(s) if s in _STATUS_ORDER
                                                   else len(_STATUS_ORDER), s))
    total = sum(facts.by_status.values())
    rows = "\n".join(f"| {s} | {facts.by_status[s]} | {100 * facts.by_status[s] / total:.1f}% |"
                     for s in order)
    return f"## Trials by status\n\n| status | trials | share |\n|---|---|---|\n{rows}"


def _workers(facts: RunFacts) -> str:
    if not facts.workers:
        return ""
    rows = "\n".join(f"| {w.worker} | {w.node or '-'} | {w.trials} | {w.ok} | {w.failed} "
                     f"| {w.per_hour:.1f} | {_share(w.busy_s, w.span_s)} |" for w in facts.workers)
    return ("## Workers\n\n| worker | node | evaluated | ok | failed | trials/hour "
            f"| time in trials |\n|---|---|---|---|---|---|---|\n{rows}")


def _share(busy: float, span: float) -> str:
    return f"{100 * min(busy / span, 1.0):.0f}%" if span > 0 else "-"


def _changes(facts: RunFacts, diffs: dict[str, str]) -> str:
    if not facts.changes:
        return "## Accepted changes\n\nNone: best is still the target as given."
    sections = [_change(c, diffs.get(c.commit, ""), facts) for c in facts.changes]
    return "## Accepted changes\n\n" + "\n\n".join(sections)


def _change(change: Change, diff: str, facts: RunFacts) -> str:
    gain = "" if math.isnan(change.gain) else f"{change.gain:+.6g}"
    rebased = f" (a stale winner of trial {change.rebased_from}, rebased)" if change.rebased_from else ""
    if change.parts:
        rebased += f" (a union of trials {', '.join(change.parts)})"
    head = (f"### {change.number}. trial {change.trial}: {change.hypothesis}{rebased}\n\n"
            f"{facts.metric} {change.before.text()} -> {change.after.text()}: gain {gain or '-'}. "
            f"Commit {change.commit[:7]} on swarm/best (what the trial ran: refs/swarm/trials/{change.trial}).")
    if not diff:
        return head + "\n\n(diff not available: the run's repo/ does not hold this commit)"
    lines = diff.rstrip("\n").splitlines()
    if len(lines) > MAX_DIFF_LINES:
        omitted = len(lines) - MAX_DIFF_LINES
        lines = lines[:MAX_DIFF_LINES] + [f"... {omitted} more lines: git -C repo show {change.commit[:10]}"]
    return head + "\n\n```diff\n" + "\n".join(lines) + "\n```"


def _lessons(lessons: list[str]) -> str:
    return "## Lessons for the next run\n\n" + "\n".join(f"- {line}" for line in lessons)


def _figures(figures: list[str]) -> str:
    if not figures:
        return ""
    return "## Figures\n\n" + "\n".join(f"![{name}]({name})" for name in figures)


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))
