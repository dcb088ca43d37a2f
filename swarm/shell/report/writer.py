"""`swarm report RUN_DIR`: reads the run directory, writes report.md, progress.png, lineage.svg
and CHANGELOG.md (the accepted changes, for the next proposer to read).

Only reads what the run recorded (ledger.jsonl, repo/), so it works on a live run, a finished
one and one copied off its cluster; the figures are written beside the ledger.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from coordinator.state import SwarmState, TrialRecord
from coordinator.status import replay_run
from swarm.shell.report.changelog import metric_moves, render_changelog
from swarm.shell.report.facts import RunFacts, run_facts
from swarm.shell.report.lessons import lessons, tally_kinds, unhelpful_lessons
from swarm.shell.report.lineage import draw_lineage
from swarm.shell.report.markdown import render_report
from swarm.shell.report.progress_chart import draw_progress

__all__ = ["write_report", "load_facts", "candidate_diffs", "CHANGELOG"]

CHANGELOG = "CHANGELOG.md"


def load_facts(run_dir: Path) -> tuple[SwarmState, RunFacts]:
    events, state = replay_run(run_dir)
    return state, run_facts(state, events)


def write_report(run_dir: Path) -> list[Path]:
    state, facts = load_facts(run_dir)
    repo = run_dir / "repo"
    accepted = _change_diffs(repo, [(c.commit, c.parent) for c in facts.changes])
    candidates = candidate_diffs(repo, [t for t in facts.trials if t.kind == "candidate"])
    paths = [run_dir / "progress.png", run_dir / "lineage.svg", run_dir / "report.md"]
    draw_progress(facts, paths[0])
    draw_lineage(facts, paths[1])
    kinds = tally_kinds(facts.trials, candidates)
    _write_text(paths[2], render_report(facts, accepted, lessons(facts, kinds), [p.name for p in paths[:2]]))
    config = state.run_info.config if state.run_info else {}
    _write_text(run_dir / CHANGELOG, render_changelog(facts, metric_moves(state, facts, config), accepted,
                                                      unhelpful_lessons(facts, kinds)))
    return [*paths, run_dir / CHANGELOG]


def _write_text(path: Path, text: str) -> None:
    """Written whole or not at all: a reader (a proposer, a live report) never sees half."""
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(text, encoding="utf-8")
    scratch.replace(path)


def _git(repo: Path, *args: str, stdin: str | None = None) -> str | None:
    """git's output, or None where the run has no repository or git refuses."""
    if not (repo / ".git").exists() and not (repo / "HEAD").exists():
        return None
    done = subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True,
                          text=True, errors="replace")
    return done.stdout if done.returncode == 0 else None


def _change_diffs(repo: Path, pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Each accepted commit's diff against the best before it."""
    found = {}
    for commit, parent in pairs:
        diff = _git(repo, "diff", "--no-color", parent, commit)
        if diff is not None:
            found[commit] = diff
    return found


def candidate_diffs(repo: Path, trials: list[TrialRecord]) -> dict[str, str]:
    """Every candidate's diff against its parent, from one git process (thousands of trials)."""
    refs = _git(repo, "for-each-ref", "--format=%(refname:lstrip=3) %(objectname)", "refs/swarm/trials/")
    if not refs:
        return {}
    present = dict(line.split(" ", 1) for line in refs.splitlines() if " " in line)
    wanted = {t.commit: t.id for t in trials if present.get(t.id) == t.commit}
    output = _git(repo, "diff-tree", "--stdin", "-p", "-U0", "--no-color", stdin="\n".join(wanted) + "\n")
    if not output:
        return {}
    lines_of: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line in wanted:  # diff-tree heads each commit's diff with its id
            current = lines_of.setdefault(wanted[line], [])
        elif current is not None:
            current.append(line)
    return {trial: "\n".join(lines) for trial, lines in lines_of.items()}
