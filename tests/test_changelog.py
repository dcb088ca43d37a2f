"""CHANGELOG.md: the accepted changes of a run, oldest first, for the next proposer to read.

From real runs (in-process coordinator, real git, real subprocess trials) of a tiny target that
prints a held-out metric, a tie-breaker and a metric the config does not name."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from swarm.core.config import SwarmConfig
from swarm.shell.report.changelog import FileDiff, diff_summary, heldout_metrics
from swarm.shell.report.lessons import tally_kinds, unhelpful_lessons
from swarm.shell.report.writer import CHANGELOG, load_facts, write_report
from tests.test_report import run_one_worker

# Deterministic, so that every strictly better change is kept. The held-out value is far from
# every other number printed, so a leak of it would show as "100x" anywhere in the file.
TRAIN = textwrap.dedent('''\
    # lower score is better
    X = 3.0

    Y = 2.0

    score = (X - 1.0) ** 2 + (Y - 1.0) ** 2
    print("---")
    print(f"score: {score}")
    print(f"score_heldout: {score + 1000.125}")
    print(f"steps: {X * 10}")
    print(f"extra: {Y + 0.5}")
''')

CRASHING_TRAIN = textwrap.dedent('''\
    # the target as given runs; every change of RATE breaks the experiment
    RATE = 1.0

    if RATE != 1.0:
        raise SystemExit(3)
    print("---")
    print(f"score: {RATE}")
''')


def _run(tmp: Path, train: str, trials: int, metric: dict[str, Any], **target: Any) -> Path:
    repo = tmp / "target"
    repo.mkdir()
    (repo / "train.py").write_text(train)
    (repo / "program.md").write_text("# a tiny target\n")
    config = SwarmConfig.model_validate({
        "name": "changelog",
        "target": {"repo": str(repo), "editable": ["train.py"], "run": "python train.py",
                   "metric": metric, "budget_s": 0.05, "timeout_s": 5, **target},
        "acceptance": {"baseline_runs": 1, "confirm_runs": 0}, "stop": {"max_trials": trials}})
    run_dir = run_one_worker(config, tmp)
    write_report(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("changelog"), TRAIN, 12,
                {"name": "score", "direction": "minimize", "heldout": "score_heldout"},
                tiebreak=[{"name": "steps", "direction": "minimize"}])


def _entries(text: str) -> list[str]:
    """The text of each `## n. trial` entry, in the file's order."""
    return re.findall(r"^## \d+\. trial .*?(?=^## |\Z)", text, flags=re.M | re.S)


def test_every_accepted_change_is_listed_oldest_first_with_its_hypothesis(run_dir: Path) -> None:
    state, facts = load_facts(run_dir)
    text = (run_dir / CHANGELOG).read_text()
    accepted = state.history[1:]
    assert len(accepted) >= 2, "the fixture's run should keep at least two changes"
    entries = _entries(text)
    assert [e.splitlines()[0] for e in entries] == [
        f"## {n}. trial {best.trial}" for n, best in enumerate(accepted, start=1)]
    for entry, best in zip(entries, accepted, strict=True):
        assert f"Hypothesis: {best.hypothesis}\n" in entry
    assert f"{len(facts.changes)} accepted change(s), oldest first" in text


def test_each_change_shows_its_gain_on_the_primary_first_then_the_other_metrics(run_dir: Path) -> None:
    _, facts = load_facts(run_dir)
    entries = _entries((run_dir / CHANGELOG).read_text())
    for entry, change in zip(entries, facts.changes, strict=True):
        metrics = [line for line in entry.splitlines() if line.startswith("- ") and ": " in line
                   and not line.startswith("- diff")]
        assert metrics[0] == (f"- score: {change.before.mean:.6g} -> {change.after.mean:.6g}, "
                              f"gain {change.gain:+.6g}")
        # the tie-breaker has a direction (gain, positive = better); `extra` has none (a change)
        assert [line.split(":")[0] for line in metrics[1:]] == ["- steps", "- extra"]
        assert re.fullmatch(r"- steps: \S+ -> \S+, gain [+-]\S+", metrics[1]), metrics[1]
        assert metrics[2].endswith("(direction not configured)"), metrics[2]
    # X 3.0 -> 2.4 takes steps 30 -> 24: a gain of 6 for a metric to minimize
    moved = [e for e in entries if "Hypothesis: X " in e]
    assert moved and all(re.search(r"- steps: 30 -> \S+, gain \+", e) for e in moved)


def test_a_held_out_metric_never_reaches_the_changelog(run_dir: Path) -> None:
    state, _ = load_facts(run_dir)
    recorded = [t.metrics for t in state.trials.values() if t.metrics]
    assert recorded and all("score_heldout" in m for m in recorded)  # it was measured
    text = (run_dir / CHANGELOG).read_text()
    assert "heldout" not in text
    assert not re.search(r"\b100\d", text), text  # no held-out value (score + 1000.125)
    assert heldout_metrics(state.run_info.config if state.run_info else {}) == {"score_heldout"}


def test_each_change_summarises_its_diff(run_dir: Path) -> None:
    entries = _entries((run_dir / CHANGELOG).read_text())
    # mutate changes one constant a move: one line out, one line in
    assert all("- diff: 1 file(s), +1 -1 lines: train.py (+1 -1)" in e for e in entries), entries


def test_the_diff_summary_counts_lines_per_file() -> None:
    diff = textwrap.dedent('''\
        diff --git a/train.py b/train.py
        --- a/train.py
        +++ b/train.py
        @@ -1,2 +1,3 @@
        -X = 1
        +X = 2
        +Y = 3
        diff --git a/lib/util.py b/lib/util.py
        --- a/lib/util.py
        +++ b/lib/util.py
        @@ -4 +3,0 @@
        -old = True
    ''')
    assert diff_summary(diff) == [FileDiff("train.py", 2, 1), FileDiff("lib/util.py", 0, 1)]
    assert diff_summary("") == []


def test_what_never_helped_is_the_reports_lessons_about_it(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, CRASHING_TRAIN, 6, {"name": "score", "direction": "minimize"})
    text = (run_dir / CHANGELOG).read_text()
    assert "None" not in text and _entries(text) == []  # nothing was accepted
    never = text.split("## What was tried and never helped\n\n", 1)[1]
    assert re.search(r"^- Never helped: RATE \(5 tries\)", never, flags=re.M), never
    assert re.search(r"^- Often broke the experiment: RATE \(5 of 5 failed\)", never, flags=re.M), never
    _, facts = load_facts(run_dir)
    lines = unhelpful_lessons(facts, tally_kinds(facts.trials, {}))
    assert never.strip() == "\n".join(f"- {line}" for line in lines)


def test_the_changelog_is_plain_text_for_a_model(run_dir: Path) -> None:
    text = (run_dir / CHANGELOG).read_text()
    assert "<" not in text and "|" not in text and "![" not in text  # no HTML, tables or figures
    assert text.startswith("# Changelog: changelog\n") and text.endswith("\n")
