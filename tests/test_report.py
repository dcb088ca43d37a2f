"""`swarm report`: the run's page and charts, from real runs (in-process coordinator, real git,
real subprocess trials) and from a synthetic 10,000-trial ledger."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
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
from swarm.shell.report.facts import time_unit
from swarm.shell.report.lineage import lineage_of, metric_label
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
        coordinator.end_session(coordinator.stop_reason() or "the worker ended")  # as the driver does
    finally:
        coordinator.close()
    return tmp / "run"


# -- runs of every shape ---------------------------------------------------------------------


def test_an_empty_run_reports_that_nothing_has_run_yet(tmp_path: Path) -> None:
    Coordinator(quadratic_config({}), tmp_path / "run", "s1", resume=False).close()

    paths = write_report(tmp_path / "run")

    assert [p.name for p in paths] == ["progress.png", "lineage.svg", "report.md", "CHANGELOG.md"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| best | not measured, from the target as given" in report
    assert section(report, "Trials by status") == "No trial has finished."
    assert section(report, "Accepted changes") == "None: best is still the target as given."
    assert section(report, "Lessons for the next run") == "- Too few judged trials to tell what helps yet."
    assert_figures_are_real(tmp_path / "run")


CRASHING_TRAIN = textwrap.dedent('''\
    # the target as given runs; every change of RATE breaks the experiment
    RATE = 1.0

    if RATE != 1.0:
        raise SystemExit(3)
    print("---")
    print(f"score: {RATE}")
''')


def test_a_run_of_crashes_only_reports_them_and_what_broke(tmp_path: Path) -> None:
    # Its baseline runs: a target whose baseline fails every time stops before any candidate.
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
    statuses = section(report, "Trials by status")
    assert re.search(r"^\| baseline \| 1 \| ", statuses, flags=re.M), statuses
    assert re.search(r"^\| crash \| 5 \| 83\.3% \|$", statuses, flags=re.M), statuses
    assert "| best | 1 (1 run), from the target as given" in report
    assert "| accepted changes | 0 |" in report
    assert "| w0 | " in section(report, "Workers") and "| 6 | 1 | 5 |" in section(report, "Workers")
    lessons = section(report, "Lessons for the next run")
    assert re.search(r"Often broke the experiment: RATE \(5 of 5 failed\)", lessons), lessons
    assert re.search(r"Never helped: RATE \(5 tries\)", lessons), lessons
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
                                               ("progress.png", "lineage.svg", "report.md", "CHANGELOG.md")]
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
    spread = f" ± {statistics.stdev(runs):.6g}" if len(runs) > 1 else ""  # a clear winner may have one run
    best = f"{statistics.mean(runs):.6g}{spread} over {len(runs)} runs"  # 6 significant digits
    baseline_runs = [e["metric"] for e in finished if started[e["trial"]]["kind"] == "baseline"
                     and started[e["trial"]]["commit"] == ran[0]["commit"]]
    gain = statistics.mean(baseline_runs) - statistics.mean(runs)  # minimize: positive is better
    headline = f"{best}  ({gain:+.6g} better than the baseline"
    assert re.search(rf"^ *best +{re.escape(headline)}", shown, flags=re.M), shown
    seconds = sum(e["seconds"] for e in finished)
    assert f"GPU-hours  0 (CPU workers: {seconds / 3600:.2f} worker-hours in experiments)" in shown
    assert "cost       $0.0000 for proposals" in shown
    per_hour = len(finished) * 3600 / (finished[-1]["ts"] - min(started[e["trial"]]["ts"] for e in finished))
    assert re.search(rf"^ *w0\b.*│ {len(finished)} +│ {per_hour:.1f} +│ stopped", shown, flags=re.M), shown


def test_one_change_has_one_commit_id_in_results_the_report_and_swarm_best(quadratic_run: Path) -> None:
    repo = quadratic_run / "repo"

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=True).stdout

    on_best = dict(reversed([line.split() for line in git(
        "log", "swarm/best", "--format=%(trailers:key=Swarm-Trial,valueonly,separator=) %H").splitlines()
        if line.strip() and not line.startswith(" ")]))  # the target as given has no trailer
    rows = [line.split("\t") for line in (quadratic_run / "results.tsv").read_text().splitlines()[1:]]
    kept = {row[5]: row[0] for row in rows if row[3] == "keep"}
    assert kept and kept == {trial: commit[:7] for trial, commit in on_best.items()}
    confirms = {row[5]: row[0] for row in rows if row[3] == "confirm"}
    state, _ = load_facts(quadratic_run)
    for trial, commit in on_best.items():  # its re-runs too, and its own commit is still in the pool
        assert all(confirms[c] == commit[:7] for c in state.confirms_of.get(trial, ()))
        assert git("rev-parse", f"refs/swarm/trials/{trial}^{{tree}}") == git("rev-parse", f"{commit}^{{tree}}")
    changes = section((quadratic_run / "report.md").read_text(), "Accepted changes")
    assert re.findall(r"^### \d+\. trial (\d+):", changes, flags=re.M) == list(on_best)
    assert re.findall(r"Commit ([0-9a-f]{7}) on swarm/best", changes) == [c[:7] for c in on_best.values()]


# -- the charts' axes and labels ----------------------------------------------------------------

@pytest.mark.parametrize(("span_s", "unit"), [
    (0.0, (1.0, "s")), (14.0, (1.0, "s")), (179.0, (1.0, "s")), (180.0, (60.0, "min")),
    (40 * 60.0, (60.0, "min")), (3 * 3600.0, (3600.0, "h")), (86400.0, (3600.0, "h"))])
def test_the_time_axis_takes_the_unit_that_fits_the_runs_length(span_s: float, unit: tuple[float, str]) -> None:
    assert time_unit(span_s) == unit


def test_a_short_run_is_charted_in_seconds(quadratic_run: Path, tmp_path: Path) -> None:
    _, facts = load_facts(quadratic_run)
    assert facts.ended - facts.started < 180  # the fixture's run: seconds, not minutes
    by_time, _ = draw_progress(facts, tmp_path / "progress.png").axes
    assert by_time.get_xlabel() == "time since the run started (s)"
    xs = [x for c in by_time.collections for x, _ in c.get_offsets() if c.get_label() == "w0"]
    assert max(xs) > 3  # a 14 s run spans its axis in seconds, not 0.00 to 0.23 minutes


def test_a_long_run_is_charted_in_hours(tmp_path: Path) -> None:
    write_synthetic_run(tmp_path / "run", trials=400, workers=1)  # about 30 s a trial: hours
    _, facts = load_facts(tmp_path / "run")
    by_time, _ = draw_progress(facts, tmp_path / "progress.png").axes
    assert facts.ended - facts.started > 3 * 3600
    assert by_time.get_xlabel() == "time since the run started (h)"


def svg_texts(path: Path, group_prefix: str = "") -> list[str]:
    """The text of every <text> element of an SVG (only those inside a <g id=group_prefix...>)."""
    texts = []
    for node in xml.dom.minidom.parse(str(path)).getElementsByTagName("text"):
        ancestor, inside = node.parentNode, not group_prefix
        while ancestor is not None and not inside:
            inside = getattr(ancestor, "getAttribute", lambda _: "")("id").startswith(group_prefix)
            ancestor = ancestor.parentNode
        if inside:
            texts.append("".join(child.data for child in node.childNodes if child.nodeType == child.TEXT_NODE))
    return texts


def test_the_lineage_counts_changes_in_whole_numbers_and_shows_each_bests_metric(quadratic_run: Path) -> None:
    state, facts = load_facts(quadratic_run)
    path = quadratic_run / "lineage.svg"
    ticks = svg_texts(path, "xtick_")
    assert ticks and all(re.fullmatch(r"\d+", tick) for tick in ticks), ticks
    assert int(ticks[-1]) <= len(facts.changes)
    values = [facts.changes[0].before.mean] + [c.after.mean for c in facts.changes]
    assert len(values) == len(state.history) and None not in values
    shown = svg_texts(path)
    assert all(metric_label(v) in shown for v in values if v is not None), (values, shown)
    assert f"{facts.name}: the pool's lineage (score of each best above it, lower is better)" in shown


def test_a_run_with_no_change_shows_the_baselines_metric_on_its_one_point(tmp_path: Path) -> None:
    config = quadratic_config({"stop.max_trials": 2, "acceptance.baseline_runs": 2})
    run_dir = run_one_worker(config, tmp_path)
    write_report(run_dir)
    _, facts = load_facts(run_dir)
    assert not facts.changes and facts.best.mean is not None
    assert metric_label(facts.best.mean) in svg_texts(run_dir / "lineage.svg")
