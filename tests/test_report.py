"""`swarm report`: the run's page and charts, from real runs (in-process coordinator, real git,
real subprocess trials) and from a synthetic 10,000-trial ledger."""

from __future__ import annotations

import json
import re
import statistics
import textwrap
import xml.dom.minidom
from pathlib import Path

import pytest
from rich.console import Console

from coordinator.service import Coordinator
from coordinator.status import load_status
from swarm.core.config import SwarmConfig, load_config
from swarm.core.values import EVALUATED_STATUSES, WorkerSite
from swarm.shell.cli import main
from swarm.shell.progress import render_status
from swarm.shell.report.lineage import lineage_of
from swarm.shell.report.progress_chart import draw_progress
from swarm.shell.report.writer import load_facts, write_report
from tests.synthetic_ledger import write_synthetic_run
from workers.loop import WorkerLoop
from workers.proposers.mutate import MutateProposer

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_figures_are_real(run_dir: Path) -> None:
    png = (run_dir / "progress.png").read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 20_000  # two drawn panels, not an empty canvas
    svg = xml.dom.minidom.parse(str(run_dir / "lineage.svg"))
    assert svg.documentElement.tagName == "svg"


def section(report: str, title: str) -> str:
    """The text of one `## title` section of report.md."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", report, flags=re.M | re.S)
    assert match, f"no section {title!r} in:\n{report}"
    return match.group(1).strip()


def quadratic_config(overrides: dict) -> SwarmConfig:
    return load_config(ROOT / "configs" / "quadratic.yaml", {
        "target.repo": str(ROOT / "examples" / "quadratic"), "target.budget_s": 0.05, **overrides})


def run_one_worker(config: SwarmConfig, tmp: Path, seed: int = 0) -> Path:
    coordinator = Coordinator(config, tmp / "run", "s1", resume=False)
    try:
        WorkerLoop("w0", config, coordinator, tmp / "w0", MutateProposer(seed=seed),
                   WorkerSite(hardware="cpu:test")).run()
    finally:
        coordinator.close()
    return tmp / "run"


# -- runs of every shape ---------------------------------------------------------------------


def test_an_empty_run_reports_that_nothing_has_run_yet(tmp_path: Path) -> None:
    Coordinator(quadratic_config({}), tmp_path / "run", "s1", resume=False).close()

    paths = write_report(tmp_path / "run")

    assert [p.name for p in paths] == ["progress.png", "lineage.svg", "report.md"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| best | not measured, from the target as given" in report
    assert section(report, "Trials by status") == "No trial has finished."
    assert section(report, "Accepted changes") == "None: best is still the target as given."
    assert section(report, "Lessons for the next run") == "- Too few judged trials to tell what helps yet."
    assert_figures_are_real(tmp_path / "run")


CRASHING_TRAIN = textwrap.dedent('''\
    # every experiment fails, whatever RATE is
    RATE = 1.0

    raise SystemExit(3)
''')


def test_a_run_of_crashes_only_reports_them_and_what_broke(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "train.py").write_text(CRASHING_TRAIN)
    (target / "program.md").write_text("# crashes\n")
    config = SwarmConfig.model_validate({
        "name": "crashes",
        "target": {"repo": str(target), "editable": ["train.py"], "run": "python train.py",
                   "metric": {"name": "score", "direction": "minimize"}, "budget_s": 0.05, "timeout_s": 5},
        "acceptance": {"baseline_runs": 1, "confirm_runs": 0}, "stop": {"max_trials": 6}})

    run_dir = run_one_worker(config, tmp_path)
    write_report(run_dir)

    report = (run_dir / "report.md").read_text()
    assert re.search(r"^\| crash \| 6 \| 100\.0% \|$", section(report, "Trials by status"), flags=re.M)
    assert "| best | not measured" in report and "| baseline | not measured" in report
    assert "| w0 | " in section(report, "Workers") and "| 6 | 0 | 6 |" in section(report, "Workers")
    lessons = section(report, "Lessons for the next run")
    assert re.search(r"Often broke the experiment: RATE \((\d) of \1 failed\)", lessons), lessons
    assert re.search(r"Never helped: RATE \(\d tries\)", lessons), lessons
    assert_figures_are_real(run_dir)


@pytest.fixture(scope="module")
def quadratic_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mutate worker on the quadratic example for 30 trials: some changes are kept."""
    tmp = tmp_path_factory.mktemp("report")
    run_dir = run_one_worker(quadratic_config({"stop.max_trials": 30}), tmp, seed=3)
    write_report(run_dir)
    return run_dir


def test_every_accepted_change_is_listed_in_order_with_its_gain_and_diff(quadratic_run: Path) -> None:
    state, facts = load_facts(quadratic_run)
    report = (quadratic_run / "report.md").read_text()
    changes = section(report, "Accepted changes")
    assert len(state.history) > 1, "the fixture's run should keep something"
    positions = []
    for number, best in enumerate(state.history[1:], start=1):
        heading = f"### {number}. trial {best.trial}: {best.hypothesis}"
        assert heading in changes
        positions.append(changes.index(heading))
        # mutate writes "NAME old -> new" per move; a repeated move grows ("; NAME new -> newer")
        final = {clause.split()[0]: clause.partition(" -> ")[2].strip()
                 for clause in best.hypothesis.split(";")}
        for constant, value in final.items():
            assert re.search(rf"^\+{constant} = {re.escape(value)}(?:\s|$)", changes, flags=re.M), (constant, value)
    assert positions == sorted(positions)
    for change in facts.changes:
        assert change.gain > 0  # kept changes improved on the best before them
        assert f"gain {change.gain:+.6g}" in changes


def test_the_headline_agrees_with_the_ledger(quadratic_run: Path) -> None:
    state, facts = load_facts(quadratic_run)
    headline = section((quadratic_run / "report.md").read_text(), "Headline")
    assert f"| accepted changes | {len(state.history) - 1} |" in headline
    assert f"from trial {state.best.trial} [{state.best.commit[:7]}]" in headline
    assert f"| trials | {len(state.trials)} finished, {state.evaluations} evaluated |" in headline
    assert "| LLM cost | $0 (no paid proposer) |" in headline
    assert facts.total_gain is not None and facts.total_gain > 0
    assert f"{facts.total_gain:+.6g} better than the baseline" in headline


def test_lessons_name_the_constants_that_helped(quadratic_run: Path) -> None:
    state, _ = load_facts(quadratic_run)
    lessons = section((quadratic_run / "report.md").read_text(), "Lessons for the next run")
    kept = {best.hypothesis.split()[0] for best in state.history[1:]}
    helped = re.search(r"Helped: (.*)\.", lessons).group(1)
    assert kept <= set(re.findall(r"([A-Z]+) \(\d+ of \d+ accepted\)", helped))


def test_the_progress_chart_plots_every_candidate_each_kept_trial_and_the_running_best(
        quadratic_run: Path, tmp_path: Path) -> None:
    state, facts = load_facts(quadratic_run)
    _, by_number = draw_progress(facts, tmp_path / "progress.png").axes

    drawn = {c.get_label(): c.get_offsets() for c in by_number.collections if c.get_label()}
    measured = [t for t in state.trials.values() if t.kind == "candidate" and t.status == "ok"]
    assert sorted(map(tuple, drawn["w0"])) == sorted((float(int(t.id)), t.metric) for t in measured)
    kept = [t for t in measured if t.verdict == "accepted"]
    assert sorted(map(tuple, drawn["kept"])) == sorted((float(int(t.id)), t.metric) for t in kept)
    (line,) = [ln for ln in by_number.lines if ln.get_label().startswith("running best")]
    assert list(dict.fromkeys(line.get_ydata())) == [value for _, _, value in facts.running_best]
    assert len(facts.running_best) == len(state.history)  # the start, then each accepted change


def test_the_report_command_prints_the_paths_it_wrote(quadratic_run: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(quadratic_run)]) == 0
    assert capsys.readouterr().out.split() == [str(quadratic_run / n) for n in
                                               ("progress.png", "lineage.svg", "report.md")]
    assert_figures_are_real(quadratic_run)


def test_the_report_command_names_a_directory_without_a_ledger(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"swarm: error: {tmp_path}: no ledger.jsonl here; "
                                       "is it a run directory (runs/<name>)?\n")


def test_ten_thousand_trials_render_with_every_count_right(tmp_path: Path) -> None:
    made = write_synthetic_run(tmp_path / "run", trials=10_000, workers=16)

    write_report(tmp_path / "run")

    report = (tmp_path / "run" / "report.md").read_text()
    assert f"| trials | {made.trials} finished, {made.trials} evaluated |" in report
    statuses = section(report, "Trials by status")
    assert f"| crash | {made.crashes} |" in statuses and f"| keep | {len(made.accepted)} |" in statuses
    assert f"| rebased | {made.rebased} |" in statuses
    assert sum(int(n) for n in re.findall(r"^\| \w+ \| (\d+) \|", statuses, flags=re.M)) == made.trials
    assert len(re.findall(r"^\| w\d+ \|", section(report, "Workers"), flags=re.M)) == 16
    headings = re.findall(r"^### \d+\. trial (\d+):", report, flags=re.M)
    assert headings == made.accepted
    assert report.count("(diff not available: the run's repo/ does not hold this commit)") == len(made.accepted)
    lineage = lineage_of(load_facts(tmp_path / "run")[1])
    assert (len(lineage.stale), len(lineage.conflicts)) == (made.rebased, made.conflicts)
    assert len(lineage.best) == len(made.accepted) + 1
    assert_figures_are_real(tmp_path / "run")


def test_status_shows_the_same_headline_figures_as_the_ledger_gives(quadratic_run: Path) -> None:
    console = Console(record=True, width=200)
    console.print(render_status(load_status(quadratic_run)))
    shown = console.export_text()

    # worked out from the ledger's events here, not through the report's own functions
    ran = [json.loads(line) for line in (quadratic_run / "ledger.jsonl").read_text().splitlines()]
    started = {e["trial"]: e for e in ran if e["event"] == "trial_started"}
    # evaluated: a proposal refused as a duplicate is finished without running
    finished = [e for e in ran if e["event"] == "trial_finished" and e["status"] in EVALUATED_STATUSES]
    best_tree = started[[e for e in ran if e.get("verdict") == "accepted"][-1]["trial"]]["tree"]
    runs = [e["metric"] for e in finished if started[e["trial"]]["tree"] == best_tree and e["status"] == "ok"]
    spread = f" ± {statistics.stdev(runs):.6f}" if len(runs) > 1 else ""  # a clear winner may have one run
    best = f"{statistics.mean(runs):.6f}{spread} over {len(runs)} runs"
    baseline_runs = [e["metric"] for e in finished if started[e["trial"]]["kind"] == "baseline"
                     and started[e["trial"]]["commit"] == ran[0]["commit"]]
    gain = statistics.mean(baseline_runs) - statistics.mean(runs)  # minimize: positive is better
    headline = f"{best}  ({gain:+.6f} better than the baseline"
    assert re.search(rf"^ *best +{re.escape(headline)}", shown, flags=re.M), shown
    seconds = sum(e["seconds"] for e in finished)
    assert f"GPU-hours  0 (CPU workers: {seconds / 3600:.2f} worker-hours in experiments)" in shown
    assert "cost       $0.0000 for proposals" in shown
    per_hour = len(finished) * 3600 / (finished[-1]["ts"] - min(started[e["trial"]]["ts"] for e in finished))
    assert re.search(rf"^ *w0\b.*│ {len(finished)} +│ {per_hour:.1f} +│ stopped", shown, flags=re.M), shown
