"""One change, one commit id: results.tsv names a kept trial (and its confirmation runs) by the
commit it became on swarm/best, as the report and `git log swarm/best` do. Pure, from events;
tests/test_report.py checks the same on a real run's repository."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coordinator.results import ResultsFile
from coordinator.state import SwarmState
from swarm.core.events import parse_event

START = [
    {"event": "run_started", "commit": "c0ffee0123", "tree": "t0", "readonly_hashes": {}, "config": {}},
    {"event": "session_started", "session": "s1"},
    {"event": "trial_started", "trial": "00001", "kind": "candidate", "worker": "w0",
     "commit": "a1a1a1a1a1", "tree": "t1", "parent": "c0ffee0123", "session": "s1", "hypothesis": "lr up"},
    {"event": "trial_finished", "trial": "00001", "status": "ok", "metric": 0.9},
    {"event": "verdict", "trial": "00001", "verdict": "promising"},
    {"event": "trial_started", "trial": "00002", "kind": "confirm", "worker": "w1", "of": "00001",
     "commit": "a1a1a1a1a1", "tree": "t1", "parent": "c0ffee0123", "session": "s1", "hypothesis": "lr up"},
    {"event": "trial_finished", "trial": "00002", "status": "ok", "metric": 0.91},
    {"event": "trial_started", "trial": "00003", "kind": "candidate", "worker": "w1",
     "commit": "d2d2d2d2d2", "tree": "t3", "parent": "c0ffee0123", "session": "s1", "hypothesis": "wd down"},
    {"event": "trial_finished", "trial": "00003", "status": "ok", "metric": 1.2},
    {"event": "verdict", "trial": "00003", "verdict": "discard"},
    {"event": "verdict", "trial": "00001", "verdict": "accepted", "best_commit": "b0b0b0b0b0"},
    {"event": "trial_started", "trial": "00004", "kind": "baseline", "worker": "w0",
     "commit": "b0b0b0b0b0", "tree": "t1", "parent": "b0b0b0b0b0", "session": "s1", "hypothesis": "baseline"},
    {"event": "trial_finished", "trial": "00004", "status": "ok", "metric": 0.9},
]


def cells(path: Path) -> list[tuple[str, str, str]]:
    """(commit, status, trial) of each line."""
    return [(row[0], row[3], row[5]) for row in (line.split("\t") for line in path.read_text().splitlines()[1:])]


def replay(events: list[dict[str, Any]]) -> SwarmState:
    state = SwarmState()
    for event in events:
        state.apply(parse_event(event))
    return state


def test_a_kept_trial_and_its_confirmations_name_the_commit_on_swarm_best(tmp_path: Path) -> None:
    ResultsFile(tmp_path / "results.tsv", "loss").write(replay(START))
    assert cells(tmp_path / "results.tsv") == [
        ("b0b0b0b", "keep", "00001"), ("b0b0b0b", "confirm", "00002"), ("d2d2d2d", "discard", "00003"),
        ("b0b0b0b", "baseline", "00004")]


def test_before_it_is_kept_a_trial_is_named_by_its_own_commit(tmp_path: Path) -> None:
    ResultsFile(tmp_path / "results.tsv", "loss").write(replay(START[:7]))
    assert cells(tmp_path / "results.tsv") == [("a1a1a1a", "pending", "00001"), ("a1a1a1a", "confirm", "00002")]


def test_written_event_by_event_the_lines_follow_the_acceptance(tmp_path: Path) -> None:
    """The coordinator rewrites only the trials an event touched; the acceptance must reach the
    confirmation's line too, so the file matches one written whole."""
    kept, whole = tmp_path / "kept.tsv", tmp_path / "whole.tsv"
    results, state = ResultsFile(kept, "loss"), SwarmState()
    for event in START:
        state.apply(parse_event(event))
        results.write(state, {event["trial"]} if "trial" in event else set())
        ResultsFile(whole, "loss").write(state)
        assert kept.read_text() == whole.read_text(), event
    assert ("b0b0b0b", "confirm", "00002") in cells(kept)
