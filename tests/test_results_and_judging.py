"""results.tsv rows (coordinator/results.py) and a worker's own conclusions (workers/classify.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coordinator.results import ResultsFile, result_status
from coordinator.state import SwarmState, TrialRecord
from swarm.core.events import parse_event
from swarm.core.scope import matching_paths, readonly_violation, scope_violation
from workers.classify import classify_run, classify_trial
from workers.evaluation import Phase, TrialRun
from workers.sandbox import SandboxResult


def trial(kind: str = "candidate", status: str | None = "ok", verdict: str | None = None,
          **extra: Any) -> TrialRecord:
    return TrialRecord(id="00001", kind=kind, worker="w0", commit="c1", tree="t1", parent="c0",
                       session="s1", status=status, verdict=verdict, **extra)


def replay(events: list[dict[str, Any]]) -> SwarmState:
    state = SwarmState()
    for event in events:
        state.apply(parse_event(event))
    return state


def rows(state: SwarmState, metric_name: str, path: Path) -> list[list[str]]:
    """results.tsv as a new ResultsFile writes it from `state` (nothing cached), split in cells."""
    ResultsFile(path, metric_name).write(state)
    return [line.split("\t") for line in path.read_text().splitlines()]


# -- result_status -----------------------------------------------------------------------

@pytest.mark.parametrize(("verdict", "expected"), [
    ("accepted", "keep"),
    ("discard", "discard"),
    ("unconfirmed", "unconfirmed"),
    ("rebased", "rebased"),
    ("stale_conflict", "stale_conflict"),
    ("promising", "pending"),
    (None, "pending"),
])
def test_status_of_an_ok_candidate_follows_its_verdict(verdict: str | None, expected: str) -> None:
    assert result_status(trial(verdict=verdict)) == expected


@pytest.mark.parametrize("kind", ["baseline", "confirm"])
def test_status_of_an_ok_rerun_is_its_kind(kind: str) -> None:
    assert result_status(trial(kind=kind)) == kind


@pytest.mark.parametrize("status", ["crash", "timeout", "duplicate", "lost", "no_metric",
                                    "out_of_scope", "guard_failed", "stale_conflict"])
def test_status_of_a_failed_trial_is_its_status(status: str) -> None:
    assert result_status(trial(status=status)) == status


def test_failed_baseline_shows_its_failure_not_its_kind() -> None:
    assert result_status(trial(kind="baseline", status="crash")) == "crash"


# -- results.tsv -------------------------------------------------------------------------

EVENTS = [
    {"event": "run_started", "commit": "c0ffee0123", "tree": "t0", "readonly_hashes": {},
     "config": {}},
    {"event": "session_started", "session": "s1"},
    {"event": "trial_started", "trial": "00001", "kind": "baseline", "worker": "w0",
     "commit": "c0ffee0123", "tree": "t0", "parent": "c0ffee0123", "session": "s1",
     "hypothesis": "baseline run of best"},
    {"event": "trial_finished", "trial": "00001", "status": "ok", "metric": 0.9979,
     "metrics": {"val_bpb": 0.9979, "peak_vram_mb": 45060.2}},
    {"event": "trial_started", "trial": "00002", "kind": "candidate", "worker": "w1",
     "commit": "abcdef0123", "tree": "t2", "parent": "c0ffee0123", "session": "s1",
     "hypothesis": "double the LR"},
    {"event": "trial_finished", "trial": "00002", "status": "crash", "reason": "exit code 1"},
    {"event": "trial_started", "trial": "00003", "kind": "candidate", "worker": "w0",
     "commit": "1234567abc", "tree": "t3", "parent": "c0ffee0123", "session": "s1",
     "hypothesis": "warmup 5%"},
    {"event": "trial_finished", "trial": "00003", "status": "ok", "metric": 0.98,
     "metrics": {"val_bpb": 0.98, "peak_vram_mb": 1024.0}},
    {"event": "verdict", "trial": "00003", "verdict": "promising"},
    {"event": "trial_started", "trial": "00004", "kind": "confirm", "worker": "w1",
     "commit": "1234567abc", "tree": "t3", "parent": "c0ffee0123", "session": "s1",
     "of": "00003", "hypothesis": "warmup 5%"},
    {"event": "trial_finished", "trial": "00004", "status": "ok", "metric": 0.981},
    {"event": "verdict", "trial": "00003", "verdict": "rebased", "commit": "9999999aaa",
     "tree": "t5", "parent": "bbbbbbb"},
    {"event": "trial_started", "trial": "00005", "kind": "candidate", "worker": "w0",
     "commit": "9999999aaa", "tree": "t5", "parent": "bbbbbbb", "session": "s1",
     "of": "00003", "hypothesis": "warmup 5%"},
    {"event": "trial_started", "trial": "00006", "kind": "candidate", "worker": "w1",
     "commit": "5555555fff", "tree": "t6", "parent": "c0ffee0123", "session": "s1",
     "hypothesis": "in flight"},
]


def test_memory_column_falls_back_to_peak_rss_when_there_is_no_gpu_memory(tmp_path: Path) -> None:
    events = [*EVENTS[:3], {"event": "trial_finished", "trial": "00001", "status": "ok", "metric": 3.1,
                            "metrics": {"val_bpb": 3.1, "peak_vram_mb": 0.0, "peak_rss_mb": 2560.0}}]
    assert rows(replay(events), "val_bpb", tmp_path / "r.tsv")[1][:4] == [
        "c0ffee0", "3.100000", "2.5", "baseline"]


def test_results_header_uses_the_metric_name(tmp_path: Path) -> None:
    assert rows(replay(EVENTS[:2]), "val_bpb", tmp_path / "r.tsv") == [
        ["commit", "val_bpb", "memory_gb", "status", "description", "trial", "worker", "cost_usd"]]


def test_results_content(tmp_path: Path) -> None:
    state = replay(EVENTS + [{"event": "trial_finished", "trial": "00005", "status": "lost"}])
    assert rows(state, "val_bpb", tmp_path / "r.tsv")[1:] == [
        ["c0ffee0", "0.997900", "44.0", "baseline", "baseline run of best", "00001", "w0", "0.000000"],
        ["abcdef0", "0.000000", "0.0", "crash", "double the LR", "00002", "w1", "0.000000"],
        ["1234567", "0.980000", "1.0", "rebased", "warmup 5%", "00003", "w0", "0.000000"],
        ["1234567", "0.981000", "0.0", "confirm", "confirm 00003: warmup 5%", "00004", "w1", "0.000000"],
        ["9999999", "0.000000", "0.0", "lost", "warmup 5% (rebased from 00003)", "00005", "w0", "0.000000"],
    ]


def test_results_leave_out_trials_in_flight(tmp_path: Path) -> None:
    assert [row[5] for row in rows(replay(EVENTS), "val_bpb", tmp_path / "r.tsv")[1:]] == [
        "00001", "00002", "00003", "00004"]


def test_results_replace_the_file_without_leaving_scratch(tmp_path: Path) -> None:
    path = tmp_path / "results.tsv"
    path.write_text("old\n")
    ResultsFile(path, "score").write(replay(EVENTS[:2]))
    assert path.read_text().startswith("commit\tscore\t")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.tsv"]


def test_a_hypothesis_with_tabs_and_newlines_stays_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "results.tsv"
    events = EVENTS[:3] + [{"event": "trial_finished", "trial": "00001", "status": "ok",
                            "metric": 1.0}]
    events[2] = dict(events[2], hypothesis="multi\nline\thypothesis\r\nand  that")
    ResultsFile(path, "score").write(replay(events))
    assert path.read_text() == (
        "commit\tscore\tmemory_gb\tstatus\tdescription\ttrial\tworker\tcost_usd\n"
        "c0ffee0\t1.000000\t0.0\tbaseline\tmulti line hypothesis and that\t00001\tw0\t0.000000\n")


def test_results_file_kept_in_step_event_by_event_matches_a_full_rewrite(tmp_path: Path) -> None:
    """The coordinator's cached lines: after every event, what a rewrite from scratch gives."""
    kept, fresh = tmp_path / "kept.tsv", tmp_path / "fresh.tsv"
    results = ResultsFile(kept, "val_bpb")
    state = SwarmState()
    for event in [*EVENTS, {"event": "trial_finished", "trial": "00005", "status": "lost"}]:
        state.apply(parse_event(event))
        results.write(state)
        ResultsFile(fresh, "val_bpb").write(state)  # nothing cached: every line formatted anew
        assert kept.read_text() == fresh.read_text()
    assert "\trebased\twarmup 5%\t00003\t" in kept.read_text()  # its line followed its verdicts


# -- scope_violation / readonly_violation ------------------------------------------------

def test_editable_paths_are_in_scope() -> None:
    assert scope_violation(["train.py"], ["train.py"], ["prepare.py"]) is None


def test_editable_glob_is_in_scope() -> None:
    assert scope_violation(["src/model.py", "src/nn/layers.py"], ["src/*.py"], []) is None


def test_no_change_is_in_scope() -> None:
    assert scope_violation([], ["train.py"], []) is None


def test_path_outside_editable_is_refused() -> None:
    assert scope_violation(["train.py", "README.md"], ["train.py"], []) == (
        "changes paths agents may not edit: README.md")


def test_readonly_wins_over_editable() -> None:
    assert scope_violation(["src/prepare.py"], ["src/*.py"], ["src/prepare.py"]) == (
        "changes paths agents may not edit: src/prepare.py")


def test_scope_message_lists_the_first_five_paths() -> None:
    changed = [f"f{i}.txt" for i in range(7)]
    assert scope_violation(changed, ["train.py"], []) == (
        "changes paths agents may not edit: f0.txt, f1.txt, f2.txt, f3.txt, f4.txt")


def test_matching_readonly_hashes() -> None:
    assert readonly_violation({"prepare.py": "aa"}, {"prepare.py": "aa", "other": "bb"}) is None


def test_changed_readonly_hash() -> None:
    assert readonly_violation({"prepare.py": "aa"}, {"prepare.py": "ab"}) == (
        "readonly file prepare.py differs from its recorded hash")


def test_missing_readonly_file() -> None:
    assert readonly_violation({"prepare.py": "aa"}, {}) == (
        "readonly file prepare.py differs from its recorded hash")


def test_first_differing_readonly_file_by_name() -> None:
    recorded = {"z.py": "1", "a.py": "1", "m.py": "1"}
    assert readonly_violation(recorded, {"z.py": "2", "a.py": "1", "m.py": "2"}) == (
        "readonly file m.py differs from its recorded hash")


# -- classify_run ------------------------------------------------------------------------

def run_result(output: str, exit_code: int | None = 0, timed_out: bool = False) -> SandboxResult:
    return SandboxResult(exit_code=exit_code, timed_out=timed_out, seconds=1.0,
                         output_tail=output, output_bytes=len(output), log_truncated=False)


def test_ok_run_gives_metric_and_other_numbers() -> None:
    output = "step 1\n---\nscore: 0.5\npeak_vram_mb: 2048\nnote: fine\n"
    assert classify_run(run_result(output), "score") == (
        "ok", 0.5, {"score": 0.5, "peak_vram_mb": 2048.0}, "")


def test_timeout_wins_over_a_printed_metric() -> None:
    assert classify_run(run_result("---\nscore: 0.5\n", None, True), "score") == (
        "timeout", None, {"score": 0.5}, "killed at timeout_s")


def test_crash_names_the_exit_code() -> None:
    assert classify_run(run_result("---\nscore: 0.5\n", 3), "score") == (
        "crash", None, {"score": 0.5}, "exit code 3; the log ends: score: 0.5")


def test_missing_metric() -> None:
    assert classify_run(run_result("---\nloss: 2.0\n"), "score") == (
        "no_metric", None, {"loss": 2.0}, "no finite 'score:' after the last '---' line; the block has: loss")


def test_nan_metric_is_no_metric() -> None:
    assert classify_run(run_result("---\nscore: nan\n"), "score") == (
        "no_metric", None, {}, "'score: nan' after the last '---' line is not a finite number")


def test_metric_before_the_last_block_does_not_count() -> None:
    assert classify_run(run_result("---\nscore: 0.1\n---\nloss: 2.0\n"), "score")[:2] == (
        "no_metric", None)


def test_matching_paths_globs_cross_directories() -> None:
    paths = ["train.py", "prepare.py", "sub/model.py", "sub/deep/x.py", "data.txt", "sub/notes.md"]
    assert matching_paths(paths, ["*.py"]) == ["train.py", "prepare.py", "sub/model.py", "sub/deep/x.py"]
    assert matching_paths(paths, ["sub/*"]) == ["sub/model.py", "sub/deep/x.py", "sub/notes.md"]
    assert matching_paths(paths, ["prepare.py"]) == ["prepare.py"]
    assert matching_paths(paths, ["train.py", "*.md"]) == ["train.py", "sub/notes.md"]
    assert matching_paths(paths, ["Train.py"]) == []  # case-sensitive
    assert matching_paths(paths, ["t?ain.py", "data.[tx]xt"]) == ["train.py", "data.txt"]
    assert matching_paths(paths, []) == []


def test_a_failed_guard_takes_a_good_runs_metric_away() -> None:
    assert classify_run(run_result("---\nscore: 0.5\n"), "score", guard_exit=1) == (
        "guard_failed", None, {"score": 0.5}, "guard exit code 1")
    assert classify_run(run_result("---\nscore: 0.5\n"), "score", guard_exit=0)[:2] == ("ok", 0.5)


def test_a_readonly_file_changed_by_the_run_takes_its_metric_away() -> None:
    tampered = "readonly file prepare.py differs from its recorded hash"
    assert classify_run(run_result("---\nscore: 0.5\n"), "score", tampered=tampered) == (
        "out_of_scope", None, {"score": 0.5}, f"{tampered} after the run")


def test_a_crash_stays_a_crash_whatever_the_guard_or_readonly_files_say() -> None:
    assert classify_run(run_result("boom", 3), "score", guard_exit=1, tampered="x")[0] == "crash"


def test_a_run_without_a_tie_breaker_is_no_metric_naming_it_and_one_with_it_is_ok() -> None:
    # A baseline without the key fails as any no_metric baseline does: the run is refused
    # before its budget goes on candidates that could never be judged on a tie
    def trial(block: str, scored: bool = False) -> TrialRun:
        phase = Phase(run_result(block), None, block)
        return TrialRun(run=phase, score=phase if scored else None, scored=scored)
    without = classify_trial(trial("---\npass_rate: 0.5\n"), "pass_rate", tiebreaks=["tokens"])
    assert without == ("no_metric", None, {"pass_rate": 0.5},
                       "no finite 'tokens:' after the last '---' line; the block has: pass_rate "
                       "(a tie-breaker: target.tiebreak)")
    scored = classify_trial(trial("---\npass_rate: 0.5\ntokens: 12\n", scored=True), "pass_rate",
                            tiebreaks=["tokens"])
    assert scored == ("ok", 0.5, {"pass_rate": 0.5, "tokens": 12.0}, "")
    assert classify_trial(trial("---\npass_rate: 0.5\n"), "pass_rate")[0] == "ok"  # none asked for


def test_results_written_from_the_first_changed_line_match_a_full_rewrite(tmp_path: Path) -> None:
    """The coordinator writes only what changed (lines in the order trials finished); after
    every event the file is what writing it whole gives."""
    kept, fresh = tmp_path / "kept.tsv", tmp_path / "fresh.tsv"
    results = ResultsFile(kept, "val_bpb")
    state = SwarmState()
    late = [{"event": "trial_finished", "trial": "00005", "status": "ok", "metric": 0.97},
            {"event": "trial_finished", "trial": "00006", "status": "crash", "reason": "exit code 1"},
            {"event": "verdict", "trial": "00005", "verdict": "accepted", "best_commit": "b5"}]
    for event in [*EVENTS, *late]:
        state.apply(parse_event(event))
        changed = {event["trial"]} if event["event"] in ("trial_finished", "verdict") else set()
        results.write(state, changed)
        ResultsFile(fresh, "val_bpb").write(state)
        assert kept.read_text() == fresh.read_text(), event
    trials = [line.split("\t")[5] for line in kept.read_text().splitlines()[1:]]
    assert trials == ["00001", "00002", "00003", "00004", "00005", "00006"]
    assert kept.read_text().splitlines()[5].split("\t")[3] == "keep"
