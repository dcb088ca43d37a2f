"""The coordinator in-process, with real git, real subprocesses and worker loops in threads (no Ray).

Two ways of driving it: `WorkerLoop`s in threads against a lock-serialized Coordinator (what the
Ray actor does), and hand-made calls with hand-made outcomes where an order must be exact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from coordinator.results import result_status
from coordinator.roster import Seat
from coordinator.service import Coordinator
from swarm.core import gitops
from swarm.core.config import SwarmConfig, load_config
from swarm.core.errors import RunDirError, SwarmError
from swarm.core.values import EVALUATED_STATUSES, Admission, CandidateInfo, Placement, TrialOutcome, WorkerSite
from workers.loop import WorkerLoop
from workers.proposers.base import Proposal, ProposalContext, ProposalFailure, Proposer
from workers.proposers.mutate import MutateProposer
from workers.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
QUADRATIC = ROOT / "examples" / "quadratic"
RESULTS_HEADER = "commit\tscore\tmemory_gb\tstatus\tdescription\ttrial\tworker\tcost_usd"
JOIN_S = 30.0


def quadratic_config(overrides: dict[str, Any] | None = None) -> SwarmConfig:
    """configs/quadratic.yaml with a tiny budget, on the example target, plus `overrides`; under
    the point rule (noise_k 2) whose confirmations and rebases these hand-driven orders follow
    (the statistical test's own orders: tests/test_acceptance.py and the union test below)."""
    return load_config(ROOT / "configs" / "quadratic.yaml", {
        "target.repo": str(QUADRATIC), "target.budget_s": 0.05, "acceptance.noise_k": 2.0,
        "acceptance.confirm_runs": 1, "acceptance.baseline_runs": 3, **(overrides or {})})


def events(run_dir: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The ledger's events as they are on disk."""
    lines = (run_dir / "ledger.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if kind is None or e["event"] == kind]


def results_lines(run_dir: Path) -> list[list[str]]:
    return [line.split("\t") for line in (run_dir / "results.tsv").read_text().splitlines()]


# -- worker loops in threads -----------------------------------------------------------------


class Serialized:
    """The Ray actor runs one call at a time; so does this wrapper, for worker threads (a test
    that calls the coordinator itself meanwhile holds `lock`)."""

    def __init__(self, coordinator: Coordinator) -> None:
        self._coordinator = coordinator
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._coordinator, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                return method(*args, **kwargs)
        return call


def run_workers(coordinator: Coordinator, root: Path, proposers: list[Proposer]) -> list[int]:
    """Runs one WorkerLoop per proposer until the coordinator says stop; what each reported."""
    client = Serialized(coordinator)
    loops = [WorkerLoop(f"w{i}", coordinator.config, client, root / f"w{i}", p, WorkerSite(hardware="cpu:test"))
             for i, p in enumerate(proposers)]
    reported: list[int | None] = [None] * len(loops)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            reported[i] = loops[i].run()
        except BaseException as exc:  # noqa: BLE001  (threads swallow exceptions: keep them)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(loops))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_S)
    if any(t.is_alive() for t in threads):
        client.request_stop()
        for thread in threads:
            thread.join(JOIN_S)
        pytest.fail(f"worker loops did not stop within {JOIN_S}s; statuses: "
                    f"{[(t.id, t.status) for t in coordinator.state.trials.values()]}")
    if errors:
        raise errors[0]
    return [r or 0 for r in reported]


class Scripted:
    """A proposer that makes the changes it is given, in order, then has no more ideas."""

    def __init__(self, changes: list[tuple[str, str | None]]) -> None:
        self.changes = list(changes)  # (path, a mode for train.py or None for 'append to the file')

    def propose(self, context: ProposalContext) -> Proposal | ProposalFailure:
        if not self.changes:
            return ProposalFailure("no more scripted changes")
        path, mode = self.changes.pop(0)
        if mode is None:
            assert context.checkout is not None
            text = (context.checkout / path).read_text() + f"# edited ({len(self.changes)} left)\n"
            return Proposal({path: text}, f"edit {path}")
        old = context.files["train.py"]
        new = re.sub(r'^MODE = "\w+"$', f'MODE = "{mode}"', old, flags=re.M) if "MODE" in old \
            else re.sub(r"^B = .*$", f"B = {mode}", old, flags=re.M)
        return Proposal({"train.py": new}, f"mode {mode}")


# -- end to end on the quadratic example -----------------------------------------------------


@dataclass
class FinishedRun:
    config: SwarmConfig
    run_dir: Path
    coordinator: Coordinator  # closed: read its state, do not call it
    reported: list[int]
    ledger: list[dict[str, Any]]  # as the run left them (the replay test appends to the files)
    results: list[list[str]]


@pytest.fixture(scope="module")
def quadratic_run(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    """Three mutate workers on the quadratic example until max_trials (24) is spent."""
    tmp = tmp_path_factory.mktemp("quadratic")
    config = quadratic_config({"stop.max_trials": 24})
    coordinator = Coordinator(config, tmp / "run", "s1", resume=False)
    reported = run_workers(coordinator, tmp, [MutateProposer(seed=i) for i in range(3)])
    coordinator.close()
    return FinishedRun(config, tmp / "run", coordinator, reported, events(tmp / "run"),
                       results_lines(tmp / "run"))


def test_e2e_every_worker_works_and_the_budget_is_spent(quadratic_run: FinishedRun) -> None:
    state = quadratic_run.coordinator.state
    assert all(n > 0 for n in quadratic_run.reported), quadratic_run.reported
    assert 24 <= state.evaluations <= 24 + 3  # owed work past the budget: one evaluation a worker at most
    assert state.inflight == {}
    assert "lost" not in {t.status for t in state.trials.values()}
    assert (quadratic_run.coordinator.status().stop_reason or "").startswith("max_trials reached (24)")


def test_e2e_best_improves_on_the_baseline(quadratic_run: FinishedRun) -> None:
    summary = quadratic_run.coordinator.status()
    assert summary.baseline and summary.best and summary.baseline.mean and summary.best.mean
    assert summary.baseline.runs >= 3
    assert summary.best.trial is not None and summary.accepted >= 1
    assert summary.best.mean < summary.baseline.mean - 0.1


def test_e2e_every_trial_starts_and_finishes_exactly_once_in_the_ledger(quadratic_run: FinishedRun) -> None:
    ledger, state = quadratic_run.ledger, quadratic_run.coordinator.state
    started = Counter(e["trial"] for e in ledger if e["event"] == "trial_started")
    finished = Counter(e["trial"] for e in ledger if e["event"] == "trial_finished")
    assert set(started) == set(finished) == set(state.trials)
    assert set(started.values()) == set(finished.values()) == {1}
    assert sorted(state.trials) == [f"{n:05d}" for n in range(1, len(state.trials) + 1)]
    assert [e["event"] for e in ledger][:2] == ["run_started", "session_started"]


def test_e2e_every_trial_that_reached_the_coordinator_has_its_ref(quadratic_run: FinishedRun) -> None:
    repo, state = quadratic_run.coordinator.pool.repo, quadratic_run.coordinator.state
    kept = {t.id: t.commit for t in state.trials.values()
            if t.status in EVALUATED_STATUSES | {"out_of_scope"}}
    assert kept
    refs = dict(line.split() [::-1] for line in
                repo.git.for_each_ref("--format=%(objectname) %(refname)", "refs/swarm/trials").splitlines())
    assert refs == {gitops.trial_ref(trial): commit for trial, commit in kept.items()}


def test_e2e_best_history_has_one_commit_per_accepted_trial_with_trailers(quadratic_run: FinishedRun) -> None:
    repo, state = quadratic_run.coordinator.pool.repo, quadratic_run.coordinator.state
    accepted = [t for t in state.trials.values() if t.verdict == "accepted"]
    log = list(repo.iter_commits(gitops.BEST_BRANCH))  # newest first
    assert log[0].hexsha == state.best.commit == repo.commit("HEAD").hexsha
    assert log[-1].hexsha == state.initial.commit
    assert len(log) == len(accepted) + 1 == len(state.history)
    assert [c.hexsha for c in reversed(log)] == [b.commit for b in state.history]
    for commit, best in zip(reversed(log[:-1]), state.history[1:], strict=True):
        trial = state.trials[best.trial]
        assert commit.tree.hexsha == trial.tree
        assert re.search(rf"^Swarm-Trial: {trial.id}$", commit.message, re.M), commit.message
        metric = re.search(r"^Swarm-Metric: score=(\S+)$", commit.message, re.M)
        assert metric, commit.message
        confirms = [c.metric for c in state.confirmations(trial.id)]
        assert all(c.status == "ok" for c in state.confirmations(trial.id))
        if trial.of:  # a rebased winner: its run on the new best re-ran a change that had won
            assert state.trials[trial.of].verdict == "rebased" and not confirms
        else:
            assert confirms  # confirmed first
        assert float(metric.group(1)) == pytest.approx(sum([trial.metric, *confirms]) / (1 + len(confirms)),
                                                       rel=1e-5)
    assert not repo.is_dirty(untracked_files=True)


def test_e2e_results_tsv_has_one_row_per_finished_trial(quadratic_run: FinishedRun) -> None:
    state = quadratic_run.coordinator.state
    header, *rows = quadratic_run.results
    assert "\t".join(header) == RESULTS_HEADER
    assert all(len(row) == 8 for row in rows)
    assert [row[5] for row in rows] == state.finish_order  # in the order trials finished
    assert sorted(state.finish_order) == sorted(t.id for t in state.trials.values() if t.status)
    became = {best.trial: best.commit for best in state.history if best.trial}
    for commit, score, memory, status, _, trial_id, worker, cost in rows:
        trial = state.trials[trial_id]
        # one id for one change: a kept trial and its confirmations name the commit on swarm/best
        change = trial.of if trial.kind == "confirm" and trial.of in became else trial_id
        assert (commit, status, worker, memory, cost) == (
            became.get(change, trial.commit)[:7], result_status(trial), trial.worker, "0.0",
            "0.000000")  # mutate is free
        assert score == (f"{trial.metric:.6f}" if trial.metric is not None else "0.000000")
    assert {row[3] for row in rows} >= {"baseline", "confirm", "keep"}


def test_e2e_logs_of_evaluated_trials_end_with_the_result_block(quadratic_run: FinishedRun) -> None:
    state = quadratic_run.coordinator.state
    evaluated = [t for t in state.trials.values() if t.status in EVALUATED_STATUSES]
    assert evaluated and all(t.status == "ok" for t in evaluated)
    for trial in evaluated:
        text = (quadratic_run.run_dir / "logs" / f"{trial.id}.log").read_text()
        block = re.search(r"(?:^|\n)---\nscore: +(\S+)\ntrue_score: +\S+\ntraining_seconds: +\S+\n\Z", text)
        assert block, f"{trial.id}: {text!r}"
        assert float(block.group(1)) == pytest.approx(trial.metric, abs=1e-6)


def test_e2e_replay_with_a_new_session_rebuilds_the_state_and_loses_what_was_in_flight(
        quadratic_run: FinishedRun, request: pytest.FixtureRequest) -> None:
    first = quadratic_run.coordinator
    before = _comparable(first.state)
    more = quadratic_run.config.with_overrides({"stop.max_trials": 100, "acceptance.baseline_runs": 50})

    second = Coordinator(more, quadratic_run.run_dir, "s2", resume=True)
    request.addfinalizer(second.close)

    assert _comparable(second.state) == before
    assert second.state.best == first.state.best and second.state.history == first.state.history
    assert second.state.sessions == ["s1", "s2"]
    second.hello("w9", WorkerSite(hardware="cpu:test"))
    unit = second.next_work("w9", None)
    assert (unit.action, unit.kind) == ("evaluate", "baseline")  # started, never reported

    second.close()  # its process died
    third = Coordinator(more, quadratic_run.run_dir, "s3", resume=True)
    request.addfinalizer(third.close)

    lost = third.state.trials[unit.trial_id]
    assert (lost.status, lost.reason) == ("lost", "its session ended before it reported")
    assert third.state.inflight == {}
    assert {k: v for k, v in _comparable(third.state)["trials"].items() if k != unit.trial_id} == before["trials"]
    assert third.state.best == first.state.best
    assert third.pool.repo.commit(gitops.BEST_BRANCH).hexsha == first.state.best.commit
    assert [e["session"] for e in events(quadratic_run.run_dir, "session_started")] == ["s1", "s2", "s3"]
    assert [e["trial"] for e in events(quadratic_run.run_dir, "trial_finished")].count(unit.trial_id) == 1
    third.report(TrialOutcome(unit.trial_id, "w9", "ok", 1.0))  # a late report is ignored
    assert [e["trial"] for e in events(quadratic_run.run_dir, "trial_finished")].count(unit.trial_id) == 1


def _comparable(state: Any) -> dict[str, Any]:
    data = dataclasses.asdict(state)
    for per_session in ("sessions", "session_starts", "session_gpus", "refusal_streak", "refused_at",
                        "refusals_in_a_row", "last_refusal", "last_event_ts", "session_refusals",
                        "refused_paths"):
        data.pop(per_session)
    return data


# -- hand-driven: exact orders with hand-made outcomes ------------------------------------------


class Driver:
    """A Coordinator on the quadratic example, called directly, plus a clone to craft commits in."""

    def __init__(self, tmp: Path, overrides: dict[str, Any] | None = None,
                 config: SwarmConfig | None = None) -> None:
        self.config = config or quadratic_config({"acceptance.baseline_runs": 1, "acceptance.confirm_runs": 1,
                                                  **(overrides or {})})
        self.run_dir = tmp / "run"
        self.coord = Coordinator(self.config, self.run_dir, "s1", resume=False)
        self.space = Workspace(tmp / "crafting")
        for worker in ("w1", "w2", "w3"):
            self.coord.hello(worker, WorkerSite(hardware="cpu:test"))

    def reopen(self, session: str, resume: bool, config: SwarmConfig | None = None) -> Coordinator:
        """The current coordinator's process dies; another opens the run directory."""
        self.coord.close()
        self.coord = Coordinator(config or self.config, self.run_dir, session, resume)
        return self.coord

    def baseline(self, worker: str = "w1", metric: float = 10.0) -> str:
        unit = self.coord.next_work(worker, None)
        assert (unit.action, unit.kind) == ("evaluate", "baseline")
        self.ok(unit.trial_id, worker, metric)
        return unit.trial_id

    def craft(self, worker: str, edits: dict[str, list[tuple[str, str]]],
              parent: str | None = None) -> tuple[CandidateInfo, bytes]:
        """A commit on `parent` (best by default) with text replacements per file."""
        parent = parent or self.coord.state.best.commit
        self.space.receive(gitops.make_bundle(self.coord.pool.repo, parent, []))
        self.space.start_proposal(parent)
        files = {}
        for path, replacements in edits.items():
            text = self.space.read_text(path)
            for old, new in replacements:
                assert old in text, (path, old)
                text = text.replace(old, new)
            files[path] = text
        hypothesis = "; ".join(f"{old} -> {new}" for r in edits.values() for old, new in r)
        commit, tree = self.space.commit_on(parent, files, hypothesis)
        bundle = self.space.bundle(commit, parent)
        assert bundle is not None
        return CandidateInfo(worker, parent, commit, tree, hypothesis), bundle

    def propose(self, worker: str, *replacements: tuple[str, str]) -> tuple[str, CandidateInfo, bytes]:
        info, bundle = self.craft(worker, {"train.py": list(replacements)})
        trial_id, refusal = dataclasses.astuple(self.coord.begin_candidate(info))
        assert trial_id is not None and refusal is None
        return trial_id, info, bundle

    def ok(self, trial_id: str, worker: str, metric: float, bundle: bytes | None = None) -> None:
        self.coord.report(TrialOutcome(trial_id, worker, "ok", metric, seconds=0.1,
                                       hardware="cpu:test", log="---\nscore: 1\n", bundle=bundle))

    def evaluate(self, worker: str, kind: str) -> str:
        unit = self.coord.next_work(worker, None)
        assert (unit.action, unit.kind) == ("evaluate", kind), unit
        return unit.trial_id

    def status_of(self, trial_id: str) -> str | None:
        return self.coord.state.trials[trial_id].status

    def finished(self, trial_id: str) -> list[dict[str, Any]]:
        return [e for e in events(self.run_dir, "trial_finished") if e["trial"] == trial_id]


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Driver]:
    made = Driver(tmp_path)
    yield made
    made.coord.close()


# -- opening a run -------------------------------------------------------------------------------


def test_opening_a_run_dir_another_coordinator_holds_is_refused(driver: Driver) -> None:
    ledger = (driver.run_dir / "ledger.jsonl").read_bytes()
    for resume in (False, True):
        with pytest.raises(RunDirError, match=rf"is in use by the coordinator of pid {os.getpid()}; stop"):
            Coordinator(driver.config, driver.run_dir, "s2", resume=resume)
    assert (driver.run_dir / "ledger.jsonl").read_bytes() == ledger
    assert driver.coord.next_work("w1", None).kind == "baseline"  # the holder goes on


def test_opening_an_existing_run_without_resume_is_refused(driver: Driver) -> None:
    ledger = (driver.run_dir / "ledger.jsonl").read_bytes()
    driver.coord.close()
    with pytest.raises(RunDirError, match=r"already holds a run; pass --resume"):
        Coordinator(driver.config, driver.run_dir, "s2", resume=False)
    assert (driver.run_dir / "ledger.jsonl").read_bytes() == ledger
    driver.reopen("s2", resume=True)  # the refused open let go of the run directory


def test_a_refused_open_releases_the_run_dir_even_while_its_error_is_kept(driver: Driver) -> None:
    driver.coord.close()
    with pytest.raises(RunDirError, match=r"already holds a run") as refused:
        Coordinator(driver.config, driver.run_dir, "s2", resume=False)
    driver.reopen("s2", resume=True)  # fails: the half-made Coordinator in the traceback holds the lock
    assert refused.value is not None


def test_resuming_a_run_dir_without_a_ledger_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match=r"no ledger.jsonl to resume from"):
        Coordinator(quadratic_config(), tmp_path / "run", "s1", resume=True)
    assert not (tmp_path / "run" / "ledger.jsonl").exists()


@pytest.mark.parametrize("override", [{"name": "loss", "direction": "minimize"},
                                      {"name": "score", "direction": "maximize"}])
def test_resuming_with_a_changed_metric_is_refused_naming_it(driver: Driver, override: dict[str, str]) -> None:
    ledger = (driver.run_dir / "ledger.jsonl").read_bytes()
    changed = driver.config.with_overrides({"target.metric": override})
    driver.coord.close()
    with pytest.raises(RunDirError, match=r"target\.metric was .* when the run started"):
        Coordinator(changed, driver.run_dir, "s2", resume=True)
    assert (driver.run_dir / "ledger.jsonl").read_bytes() == ledger


def test_reopening_with_the_same_session_keeps_trials_in_flight(driver: Driver) -> None:
    unit = driver.coord.next_work("w1", None)
    assert unit.kind == "baseline"

    restarted = driver.reopen("s1", resume=False)  # a Ray actor restart: same arguments

    assert restarted.state.trials[unit.trial_id].status is None
    assert restarted.state.inflight == {unit.trial_id: "w1"}
    assert [e["session"] for e in events(driver.run_dir, "session_started")] == ["s1"]
    assert restarted.session_start == events(driver.run_dir, "session_started")[0]["ts"]
    restarted.hello("w1", WorkerSite())
    restarted.report(TrialOutcome(unit.trial_id, "w1", "ok", 6.7, hardware="cpu:test"))
    assert restarted.state.trials[unit.trial_id].status == "ok"
    again = driver.reopen("s1", resume=True)
    assert [e["session"] for e in events(driver.run_dir, "session_started")] == ["s1"]
    assert again.state.samples == restarted.state.samples


# -- reports, lost trials, duplicates ----------------------------------------------------------


def test_report_is_idempotent(driver: Driver) -> None:
    unit = driver.coord.next_work("w1", None)
    outcome = TrialOutcome(unit.trial_id, "w1", "ok", 6.7, hardware="cpu:test", log="---\nscore: 6.7\n")
    driver.coord.report(outcome)
    driver.coord.report(outcome)
    assert len(driver.finished(unit.trial_id)) == 1
    assert driver.coord.state.best_samples() == [6.7]
    assert len(results_lines(driver.run_dir)) == 2


def test_hello_gives_the_readonly_hashes_recorded_when_the_run_started(driver: Driver) -> None:
    digest = hashlib.sha256((QUADRATIC / "prepare.py").read_bytes()).hexdigest()
    assert driver.coord.hello("w4", WorkerSite(hardware="cpu:other")) == {"prepare.py": digest}
    assert driver.coord.roster.live["w4"] == WorkerSite(hardware="cpu:other")


def test_a_candidate_whose_commit_never_arrives_is_lost(driver: Driver) -> None:
    driver.baseline()
    info, _ = driver.craft("w1", {"train.py": [("A = 1.0", "A = 2.0")]})
    trial, _ = dataclasses.astuple(driver.coord.begin_candidate(info))
    driver.ok(trial, "w1", 0.5, bundle=None)  # the bundle went missing
    record = driver.coord.state.trials[trial]
    assert (record.status, record.reason, record.metric) == ("lost", "its commit never reached the coordinator", None)
    assert driver.coord.state.best.commit == driver.coord.state.initial.commit
    assert not gitops.has_commit(driver.coord.pool.repo, info.commit)


def test_reporting_a_trial_that_was_never_started_records_nothing(driver: Driver) -> None:
    before = events(driver.run_dir)
    driver.coord.report(TrialOutcome("99999", "w1", "ok", 1.0))
    assert events(driver.run_dir) == before


def test_asking_for_work_with_a_trial_in_flight_loses_that_trial(driver: Driver) -> None:
    first = driver.coord.next_work("w1", None)
    second = driver.coord.next_work("w1", None)
    lost = driver.coord.state.trials[first.trial_id]
    assert (lost.status, lost.reason) == ("lost", "its worker asked for new work without reporting it")
    assert (second.action, second.kind) == ("evaluate", "baseline") and second.trial_id != first.trial_id
    assert driver.coord.state.inflight == {second.trial_id: "w1"}
    driver.ok(first.trial_id, "w1", 1.0)  # its late report changes nothing
    assert driver.status_of(first.trial_id) == "lost" and len(driver.finished(first.trial_id)) == 1
    assert driver.coord.state.evaluations == 1


def test_a_trial_lost_on_next_work_is_in_results_tsv_at_once(driver: Driver) -> None:
    first = driver.coord.next_work("w1", None)
    driver.coord.next_work("w1", None)
    assert [row[5] for row in results_lines(driver.run_dir)[1:]] == [first.trial_id]


def test_worker_lost_requeues_its_confirmation_for_the_next_worker(driver: Driver) -> None:
    driver.baseline("w1", 10.0)
    trial, info, bundle = driver.propose("w1", ("A = 1.0", "A = 2.0"))
    driver.ok(trial, "w1", 5.0, bundle)
    assert driver.coord.state.trials[trial].verdict == "promising"
    confirm = driver.coord.next_work("w2", None)
    assert (confirm.kind, confirm.commit) == ("confirm", info.commit)
    assert confirm.bundle is not None  # w2 has nothing yet: it gets the candidate's objects

    driver.coord.worker_lost("w2", "actor died: node gone")

    assert (driver.status_of(confirm.trial_id), driver.coord.state.trials[confirm.trial_id].reason) == \
        ("lost", "actor died: node gone")
    assert "w2" not in driver.coord.roster.live
    again = driver.coord.next_work("w3", None)
    assert (again.action, again.kind, again.commit) == ("evaluate", "confirm", info.commit)
    assert driver.coord.state.trials[again.trial_id].of == trial
    driver.ok(again.trial_id, "w3", 5.0)
    assert driver.coord.state.trials[trial].verdict == "accepted"
    assert driver.coord.state.best.tree == info.tree


def test_the_same_change_on_the_same_parent_is_refused_as_duplicate(driver: Driver) -> None:
    info, _ = driver.craft("w1", {"train.py": [("A = 1.0", "A = 2.0")]})
    first, refusal = dataclasses.astuple(driver.coord.begin_candidate(info))
    assert refusal is None
    same = dataclasses.replace(info, worker_id="w2", commit="f" * 40)  # another commit, same tree

    second, refusal = dataclasses.astuple(driver.coord.begin_candidate(same))

    assert refusal == "duplicate" and second not in (None, first)
    assert driver.status_of(second) == "duplicate"
    assert driver.finished(second)[0]["reason"] == "the same change was already tried on this parent"
    assert driver.coord.state.evaluations == 1  # a duplicate costs no evaluation
    assert driver.coord.state.inflight == {first: "w1"}
    last = results_lines(driver.run_dir)[-1]
    assert [last[5], last[3], last[6]] == [second, "duplicate", "w2"]


def test_begin_candidate_retried_by_its_worker_gives_the_same_trial(driver: Driver) -> None:
    info, _ = driver.craft("w1", {"train.py": [("A = 1.0", "A = 2.0")]})
    first = driver.coord.begin_candidate(info)
    assert driver.coord.begin_candidate(info) == first == Admission(first.trial_id, None)
    assert len(events(driver.run_dir, "trial_started")) == 1


def test_a_candidate_that_changes_nothing_is_a_duplicate(driver: Driver) -> None:
    best = driver.coord.state.best
    info = CandidateInfo("w1", best.commit, "e" * 40, best.tree, "no change at all")
    trial, refusal = dataclasses.astuple(driver.coord.begin_candidate(info))
    assert refusal == "duplicate" and driver.status_of(trial) == "duplicate"
    assert driver.coord.state.evaluations == 0


def test_begin_candidate_after_the_budget_is_spent_says_stop(tmp_path: Path) -> None:
    driver = Driver(tmp_path, {"stop.max_trials": 1})
    driver.baseline()
    info, _ = driver.craft("w1", {"train.py": [("A = 1.0", "A = 2.0")]})
    assert driver.coord.begin_candidate(info) == Admission(None, "stop")
    assert driver.coord.next_work("w1", None).action == "stop"


# -- scope -------------------------------------------------------------------------------------


@pytest.mark.parametrize("edits", [
    {"prepare.py": [("NOISE = 0.02", "NOISE = 0.0")]},
    {"train.py": [("A = 1.0", "A = 3.0")], "prepare.py": [("NOISE = 0.02", "NOISE = 0.0")]},
    {"program.md": [("Rules:", "Rules (none):")]},
], ids=["readonly", "readonly-and-editable", "not-editable"])
def test_coordinator_rechecks_scope_whatever_the_worker_says(
        driver: Driver, edits: dict[str, list[tuple[str, str]]]) -> None:
    driver.baseline("w1", 10.0)
    info, bundle = driver.craft("w2", edits)
    trial, refusal = dataclasses.astuple(driver.coord.begin_candidate(info))
    assert refusal is None

    driver.ok(trial, "w2", 0.001, bundle)  # the worker claims a great result

    record = driver.coord.state.trials[trial]
    assert (record.status, record.metric, record.verdict) == ("out_of_scope", None, None)
    assert record.reason.startswith("changes paths agents may not edit: ")
    assert sorted(p for p in edits if p != "train.py") == \
        sorted(record.reason.split(": ", 1)[1].split(", "))
    assert driver.coord.state.best.commit == driver.coord.state.initial.commit
    assert driver.coord.pool.repo.commit(gitops.trial_ref(trial)).hexsha == info.commit  # kept in the pool
    assert driver.coord.state.evaluations == 1


def test_a_proposer_that_edits_the_harness_gets_out_of_scope_and_the_worker_carries_on(tmp_path: Path) -> None:
    config = quadratic_config({"acceptance.baseline_runs": 1, "acceptance.confirm_runs": 0,
                               "stop.max_trials": 3})
    coordinator = Coordinator(config, tmp_path / "run", "s1", resume=False)
    proposer = Scripted([("prepare.py", None), ("train.py", "0.5"), ("prepare.py", None), ("train.py", "0.3")])

    run_workers(coordinator, tmp_path, [proposer])

    candidates = [t for t in coordinator.state.trials.values() if t.kind == "candidate"]
    assert [t.status for t in candidates] == ["out_of_scope", "ok", "out_of_scope", "ok"]
    for trial in candidates[::2]:
        assert trial.reason == "changes paths agents may not edit: prepare.py"
        assert "---" not in (tmp_path / "run" / "logs" / f"{trial.id}.log").read_text()  # never ran
        assert trial.seconds == 0.0
        assert coordinator.pool.repo.commit(gitops.trial_ref(trial.id)).hexsha == trial.commit
    assert candidates[1].verdict == "accepted"
    assert coordinator.pool.repo.git.show(f"{gitops.BEST_BRANCH}:prepare.py") == \
        (QUADRATIC / "prepare.py").read_text().rstrip("\n")
    assert coordinator.state.evaluations == 3


# -- statuses as data: a tiny target that misbehaves on request --------------------------------

MODES_TRAIN = textwrap.dedent('''\
    import os
    import sys
    import time

    MODE = "ok"

    if MODE == "crash":
        print("---\\nscore: 0.1", flush=True)
        sys.exit(1)
    if MODE == "timeout":
        print("sleeping past the timeout", flush=True)
        time.sleep(30)
    if MODE == "guard":  # what run leaves for the guard goes in its artifacts
        open(os.path.join(os.environ.get("SWARM_ARTIFACTS", "."), "guard_fail"), "w").close()
    if MODE == "tamper":
        with open("prepare.py", "a") as harness:
            harness.write("# rewritten by the candidate\\n")
    print("---")
    if MODE == "no_metric":
        print("loss: 0.5")
    elif MODE == "nan":
        print("score: nan")
    else:
        print("score:", 0.5 if MODE in ("better", "guard", "tamper") else 1.0)
''')

MODES_PREPARE = textwrap.dedent('''\
    """The guard: a trial that left guard_fail behind does not count."""
    import os
    import sys

    sys.exit(1 if os.path.exists(os.path.join(os.environ.get("SWARM_ARTIFACTS", "."), "guard_fail")) else 0)
''')


def modes_config(tmp: Path, max_trials: int, isolation: str = "namespaces") -> SwarmConfig:
    source = tmp / "modes"
    source.mkdir()
    (source / "train.py").write_text(MODES_TRAIN)
    (source / "prepare.py").write_text(MODES_PREPARE)
    (source / "program.md").write_text("# modes\n")
    return SwarmConfig.model_validate({
        "name": "modes",
        "target": {"repo": str(source), "editable": ["train.py"], "readonly": ["prepare.py"],
                   "run": "python train.py", "metric": {"name": "score", "direction": "minimize"},
                   "budget_s": 0.05, "timeout_s": 6, "guard": "python prepare.py"},
        "acceptance": {"min_delta": 0.0, "noise_k": 2.0, "baseline_runs": 1, "confirm_runs": 0},
        "stop": {"max_trials": max_trials},
        "sandbox": {"isolation": isolation},
    })


def test_statuses_are_data_and_the_run_goes_on(tmp_path: Path) -> None:
    modes = ["crash", "timeout", "no_metric", "nan", "guard", "better"]
    config = modes_config(tmp_path, max_trials=1 + len(modes))
    coordinator = Coordinator(config, tmp_path / "run", "s1", resume=False)

    run_workers(coordinator, tmp_path, [Scripted([("train.py", m) for m in modes])])

    state = coordinator.state
    baseline = state.trials["00001"]
    assert (baseline.kind, baseline.status, baseline.metric) == ("baseline", "ok", 1.0)
    candidates = [t for t in state.trials.values() if t.kind == "candidate"]
    assert [t.hypothesis for t in candidates] == [f"mode {m}" for m in modes]
    assert [(t.status, t.reason) for t in candidates] == [
        ("crash", "exit code 1; the log ends: score: 0.1"),
        ("timeout", "killed at timeout_s"),
        ("no_metric", "no finite 'score:' after the last '---' line; the block has: loss"),
        ("no_metric", "'score: nan' after the last '---' line is not a finite number"),
        ("guard_failed", "guard exit code 1"),
        ("ok", ""),
    ]
    assert [t.metric for t in candidates] == [None] * 5 + [0.5]
    assert candidates[-1].verdict == "accepted" and state.best.trial == candidates[-1].id
    assert 0.9 < candidates[1].seconds < 10
    assert "sleeping past the timeout" in (tmp_path / "run" / "logs" / f"{candidates[1].id}.log").read_text()
    assert state.evaluations == 1 + len(modes) and state.inflight == {}
    statuses = [row[3] for row in results_lines(tmp_path / "run")[1:]]
    assert statuses == ["baseline", "crash", "timeout", "no_metric", "no_metric", "guard_failed", "keep"]


def test_in_the_jail_a_candidate_cannot_rewrite_the_harness(tmp_path: Path) -> None:
    config = modes_config(tmp_path, max_trials=3)
    coordinator = Coordinator(config, tmp_path / "run", "s1", resume=False)

    run_workers(coordinator, tmp_path, [Scripted([("train.py", "tamper"), ("train.py", "better")])])

    tamper, better = [t for t in coordinator.state.trials.values() if t.kind == "candidate"]
    assert (tamper.status, tamper.metric) == ("crash", None)
    assert "Read-only file system: 'prepare.py'" in tamper.reason
    assert (better.status, better.verdict) == ("ok", "accepted")


def test_without_the_jail_a_candidate_that_rewrites_the_harness_is_out_of_scope(tmp_path: Path) -> None:
    config = modes_config(tmp_path, max_trials=2, isolation="none")
    coordinator = Coordinator(config, tmp_path / "run", "s1", resume=False)

    run_workers(coordinator, tmp_path, [Scripted([("train.py", "tamper"), ("train.py", "better")])])

    tamper, better = [t for t in coordinator.state.trials.values() if t.kind == "candidate"]
    assert (tamper.status, tamper.metric, tamper.verdict) == ("out_of_scope", None, None)
    assert tamper.reason == "readonly file prepare.py differs from its recorded hash after the run"
    assert "---\nscore: 0.5" in (tmp_path / "run" / "logs" / f"{tamper.id}.log").read_text()  # it ran
    # the next trial ran on a restored harness: otherwise it would be refused too
    assert (better.status, better.verdict) == ("ok", "accepted")
    assert coordinator.state.best.trial == better.id


# -- stale winners ------------------------------------------------------------------------------


def _two_winners_on_one_parent(driver: Driver, first: list[tuple[str, str]],
                               second: list[tuple[str, str]]) -> tuple[str, CandidateInfo, str, CandidateInfo]:
    """w1 and w2 propose on the same best; both are clearly better; w1's is confirmed and accepted."""
    driver.baseline("w1", 10.0)
    parent = driver.coord.state.best.commit
    a, info_a, bundle_a = driver.propose("w1", *first)
    b, info_b, bundle_b = driver.propose("w2", *second)
    assert info_a.parent == info_b.parent == parent
    driver.ok(a, "w1", 5.0, bundle_a)
    driver.ok(b, "w2", 4.0, bundle_b)
    assert driver.coord.state.awaiting == [a, b]
    assert [driver.coord.state.trials[t].verdict for t in (a, b)] == ["promising", "promising"]
    confirm_a = driver.evaluate("w3", "confirm")
    assert driver.coord.state.trials[confirm_a].of == a
    driver.ok(confirm_a, "w3", 5.0)
    assert driver.coord.state.trials[a].verdict == "accepted"
    assert driver.coord.state.best.tree == info_a.tree
    assert driver.coord.pool.repo.commit(driver.coord.state.best.commit).parents[0].hexsha == parent
    # b's parent is no longer best: it is judged at once on its own run, not confirmed on the old base
    assert driver.coord.state.awaiting == []
    assert [t.of for t in driver.coord.state.trials.values() if t.kind == "confirm"] == [a]
    return a, info_a, b, info_b


def test_a_stale_winner_that_merges_cleanly_is_rebased_and_queued(driver: Driver) -> None:
    a, info_a, b, info_b = _two_winners_on_one_parent(driver, [("A = 1.0", "A = 2.0")], [("B = 1.0", "B = 0.5")])
    state, repo = driver.coord.state, driver.coord.pool.repo
    best = state.best

    assert state.trials[b].verdict == "rebased"
    verdict = [e for e in events(driver.run_dir, "verdict") if e["trial"] == b][-1]
    rebased = verdict["commit"]
    assert verdict["parent"] == best.commit and verdict["tree"] == gitops.tree_of(repo, rebased)
    assert [p.hexsha for p in repo.commit(rebased).parents] == [best.commit]
    text = repo.git.show(f"{rebased}:train.py")
    assert "A = 2.0" in text and "B = 0.5" in text
    assert f"Swarm-Rebased-From: {b}" in repo.commit(rebased).message
    assert repo.commit(f"refs/swarm/rebased/{b}").hexsha == rebased
    assert [q.commit for q in state.rebase_queue] == [rebased]
    assert state.best.commit == best.commit  # not accepted before it is evaluated on the new base
    assert dict((r[5], r[3]) for r in results_lines(driver.run_dir)[1:])[b] == "rebased"

    # re-evaluated on the new base first, ahead of new proposals; a lost re-run is owed again
    unit = driver.coord.next_work("w2", None)
    assert (unit.kind, unit.commit) == ("candidate", rebased)
    assert driver.coord.state.trials[unit.trial_id].of == b and state.rebase_queue == []
    driver.coord.worker_lost("w2", "preempted")
    assert [q.commit for q in state.rebase_queue] == [rebased]
    rerun = driver.evaluate("w3", "candidate")
    assert driver.coord.state.trials[rerun].commit == rebased
    driver.ok(rerun, "w3", 3.0)
    # b won on its old base and again here: this run was its confirmation (confirm_runs 1)
    assert state.trials[rerun].verdict == "accepted"
    assert state.confirmations(rerun) == []
    assert state.best.tree == gitops.tree_of(repo, rebased)
    assert [p.hexsha for p in repo.commit(state.best.commit).parents] == [best.commit]


def test_a_stale_winner_that_conflicts_is_stale_conflict(driver: Driver) -> None:
    a, info_a, b, info_b = _two_winners_on_one_parent(driver, [("A = 1.0", "A = 2.0")], [("A = 1.0", "A = 2.5")])
    state = driver.coord.state

    assert state.trials[b].verdict == "stale_conflict"
    verdict = [e for e in events(driver.run_dir, "verdict") if e["trial"] == b][-1]
    assert verdict["reason"] == f"conflicts with best {state.best.commit[:7]}"
    assert state.rebase_queue == [] and state.awaiting == []
    assert state.best.tree == info_a.tree
    assert dict((r[5], r[3]) for r in results_lines(driver.run_dir)[1:])[b] == "stale_conflict"
    merge = driver.run_dir / ".merge"
    assert gitops.open_repo(merge).git.status("--porcelain") == ""
    assert driver.coord.next_work("w2", None).action == "propose"


def test_a_stale_winner_already_contained_in_best_is_discarded(driver: Driver) -> None:
    a, info_a, b, info_b = _two_winners_on_one_parent(
        driver, [("A = 1.0", "A = 2.0"), ("B = 1.0", "B = 0.5")], [("A = 1.0", "A = 2.0")])
    assert driver.coord.state.trials[b].verdict == "discard"
    verdict = [e for e in events(driver.run_dir, "verdict") if e["trial"] == b][-1]
    assert verdict["reason"] == "its change is already in best"
    assert driver.coord.state.rebase_queue == []


def test_replaying_a_hand_driven_run_gives_the_same_state(driver: Driver) -> None:
    _two_winners_on_one_parent(driver, [("A = 1.0", "A = 2.0")], [("B = 1.0", "B = 0.5")])
    inflight = driver.coord.next_work("w2", None)  # the rebased winner, never reported
    before = _comparable(driver.coord.state)

    reopened = driver.reopen("s2", resume=True)

    after = _comparable(reopened.state)
    lost = after["trials"][inflight.trial_id]
    assert (lost["status"], lost["reason"]) == ("lost", "its session ended before it reported")
    assert [q.commit for q in reopened.state.rebase_queue] == [inflight.commit]  # owed again
    for key in ("best", "history", "initial", "samples", "tree_of", "tried", "run_info", "awaiting"):
        assert after[key] == before[key], key
    assert {k: v for k, v in after["trials"].items() if k != inflight.trial_id} == \
        {k: v for k, v in before["trials"].items() if k != inflight.trial_id}


# -- proposers that never give a runnable change ------------------------------------------------


class NoIdeas:
    def propose(self, context: ProposalContext) -> Proposal | ProposalFailure:
        return ProposalFailure("nothing to mutate")


def test_a_proposer_that_always_fails_does_not_spin(tmp_path: Path) -> None:
    config = quadratic_config({"acceptance.baseline_runs": 1, "stop.max_trials": 10})
    coordinator = Coordinator(config, tmp_path / "run", "s1", resume=False)
    client = Serialized(coordinator)
    loop = WorkerLoop("w0", config, client, tmp_path / "w0", NoIdeas(), WorkerSite(hardware="cpu:test"))
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    thread.join(2.0)
    client.request_stop()
    thread.join(JOIN_S)
    coordinator.close()
    failures = events(tmp_path / "run", "proposal_failed")
    # ~2 s of a proposer that cannot propose: a handful of fsync'd events, not thousands
    assert len(failures) <= 10, f"{len(failures)} proposal_failed events in 2 s"


# -- the next proposal is prepared while the current trial runs ---------------------------------


class Watching:
    """A mutate proposer that notes whether an experiment was running when it was asked."""

    def __init__(self, flag: Path) -> None:
        self.flag, self.during_trial = flag, []
        self.inner = MutateProposer(seed=3)

    def propose(self, context: ProposalContext) -> Proposal | ProposalFailure:
        self.during_trial.append(self.flag.exists())
        return self.inner.propose(context)


def test_the_next_proposal_is_prepared_while_the_current_trial_runs(tmp_path: Path) -> None:
    flag = tmp_path / "experiment-running"
    run = f"touch {flag} && python train.py; status=$?; rm -f {flag}; exit $status"
    # the test watches a file of the host's the run touches: the jail would hide it
    config = quadratic_config({"target.run": run, "target.budget_s": 0.3, "sandbox.isolation": "none",
                               "stop.max_trials": 8, "acceptance.baseline_runs": 1})
    coordinator = Coordinator(config, tmp_path / "run", "s1", resume=False)
    proposer = Watching(flag)
    run_workers(coordinator, tmp_path / "workers", [proposer])
    coordinator.close()
    # Even the first proposal overlaps a trial (the baseline run); only a prepared proposal that
    # conflicts with a newer best is redone between trials.
    overlapped = sum(proposer.during_trial)
    assert overlapped >= 5 and overlapped >= len(proposer.during_trial) - 2, proposer.during_trial


class RewritesB:
    """Always rewrites the line `B = ...` (to worse values), as the overlap bench's LLM does, so a
    proposal prepared on one best conflicts with a best that changed B. Notes each call's parent
    and whether one of the worker's experiments was running during it."""

    def __init__(self, running: Path) -> None:
        self.running, self.calls = running, []

    def propose(self, context: ProposalContext) -> Proposal | ProposalFailure:
        assert context.checkout is not None
        parent = gitops.open_repo(context.checkout).head.commit.hexsha
        self.calls.append((parent, self._experiment_running()))
        value = 5.0 + len(self.calls)
        text = re.sub(r"^B = .*$", f"B = {value}", context.files["train.py"], flags=re.M)
        return Proposal({"train.py": text}, f"B -> {value}")

    def _experiment_running(self, within_s: float = 3.0) -> bool:
        # The worker asks for its next proposal just before it starts the experiment, so the
        # trial's shell may not have touched the marker yet: a call this slow still overlaps it.
        deadline = time.monotonic() + within_s
        while not self.running.exists():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True


class GatedWorker:
    """Worker w2 on a Driver's coordinator, its experiments held until `gate` exists, and its
    RewritesB proposer noting whether one of them was running."""

    def __init__(self, tmp_path: Path, driver: Driver) -> None:
        self.gate, running = tmp_path / "gate", tmp_path / "running"
        self.client, self.proposer = Serialized(driver.coord), RewritesB(running)
        loop = WorkerLoop("w2", driver.config, self.client, tmp_path / "w2", self.proposer,
                          WorkerSite(hardware="cpu:test"), best_poll_s=0.05)
        self.thread = threading.Thread(target=loop.run, daemon=True)

    @staticmethod
    def run_command(tmp_path: Path) -> dict[str, Any]:
        gate, running = tmp_path / "gate", tmp_path / "running"
        return {"target.run": f"touch {running} && while [ ! -e {gate} ]; do sleep 0.05; "
                              f"done; python train.py; s=$?; rm -f {running}; exit $s",
                "target.timeout_s": 300, "sandbox.isolation": "none"}  # host files: no jail

    def trials(self, driver: Driver) -> list[Any]:
        return [t for t in driver.coord.state.trials.values() if t.worker == "w2"]

    def finish_second_trial_and_stop(self, driver: Driver) -> Any:
        """Opens the gate, waits for w2's second trial, stops the run; that trial."""
        self.gate.touch()
        wait_until(lambda: len(self.trials(driver)) == 2)
        self.client.request_stop()
        self.thread.join(JOIN_S)
        assert not self.thread.is_alive()
        driver.coord.close()
        return self.trials(driver)[1]


def test_a_prepared_proposal_that_a_new_best_breaks_is_replaced_before_the_trial_ends(tmp_path: Path) -> None:
    driver = Driver(tmp_path, GatedWorker.run_command(tmp_path))
    driver.baseline("w1", 10.0)
    old_best = driver.coord.state.best.commit
    w2 = GatedWorker(tmp_path, driver)
    w2.thread.start()
    # w2 proposed, is running its candidate, and prepared its next proposal on the old best
    wait_until(lambda: len(w2.proposer.calls) == 2)
    with w2.client.lock:  # meanwhile w1 wins (B = 0.3 is the optimum), confirmed by w3
        trial, _info, bundle = driver.propose("w1", ("B = 1.0", "B = 0.3"))
        driver.ok(trial, "w1", 5.0, bundle)
        driver.ok(driver.evaluate("w3", "confirm"), "w3", 5.0)
        new_best = driver.coord.state.best.commit
        assert new_best != old_best
    wait_until(lambda: len(w2.proposer.calls) == 3)
    assert w2.trials(driver)[0].status is None  # still running
    assert w2.proposer.calls == [(old_best, False), (old_best, True), (new_best, True)]
    second = w2.finish_second_trial_and_stop(driver)
    # w2's next candidate is the proposal prepared on the new best; asking anew would say B -> 9.0
    assert (second.parent, second.hypothesis) == (new_best, "B -> 8.0")


def test_a_worker_confirming_a_candidate_prepares_its_next_proposal_on_that_candidate(tmp_path: Path) -> None:
    driver = Driver(tmp_path, GatedWorker.run_command(tmp_path))
    driver.baseline("w1", 10.0)
    old_best = driver.coord.state.best.commit
    trial, info, bundle = driver.propose("w1", ("B = 1.0", "B = 0.3"))
    driver.ok(trial, "w1", 5.0, bundle)  # promising: the next worker to ask confirms it
    w2 = GatedWorker(tmp_path, driver)
    w2.thread.start()
    # During the confirmation: one proposal on best, and, since that one conflicts with the
    # candidate (both rewrite B), a second on the candidate
    wait_until(lambda: len(w2.proposer.calls) == 2)
    confirming = w2.trials(driver)[0]
    assert (confirming.kind, confirming.of, confirming.status) == ("confirm", trial, None)
    assert w2.proposer.calls == [(old_best, True), (info.commit, True)]
    second = w2.finish_second_trial_and_stop(driver)
    state = driver.coord.state
    assert state.trials[trial].verdict == "accepted" and state.best.tree == info.tree
    # the proposal made on the candidate, moved onto the accepted commit, ran next at no extra
    # cost; the one on the old best was dropped (asking anew would have said B -> 8.0)
    assert (second.parent, second.hypothesis) == (state.best.commit, "B -> 7.0")


def wait_until(predicate: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class HalvesC:
    """Always proposes halving C: on an unchanged parent its second idea repeats its first."""

    def propose(self, context: ProposalContext) -> Proposal | ProposalFailure:
        text = context.files["train.py"]
        line = next(each for each in text.splitlines() if each.startswith("C = "))
        old = float(line.split("=")[1])
        return Proposal({"train.py": text.replace(line, f"C = {old / 2}")}, f"C {old} -> {old / 2}")


def test_a_repeated_change_is_not_announced_and_never_grown_on(tmp_path: Path) -> None:
    config = quadratic_config({"stop.max_trials": 14, "acceptance.confirm_runs": 0, "stop.max_refusals": 3})
    coordinator = Coordinator(config, tmp_path / "run", "s1", resume=False)
    run_workers(coordinator, tmp_path / "workers", [HalvesC()])
    coordinator.close()
    finished = events(tmp_path / "run", "trial_finished")
    assert [e for e in finished if e["status"] == "duplicate"] == []
    hypotheses = [e["hypothesis"] for e in events(tmp_path / "run", "trial_started")
                  if e["kind"] == "candidate"]
    # C=0.5 and C=0.25 (the optimum) are kept; C=0.125 is worse by 0.031 (accepting it would
    # take a 3-sigma fluke past the 2-sigma margin). The next idea on C=0.25 would be C=0.125
    # again: it is asked again on the clean parent, never on top of the repeat (a refused change
    # is no base), so this proposer only repeats itself and the refusal budget ends the run.
    assert hypotheses == ["C 1.0 -> 0.5", "C 0.5 -> 0.25", "C 0.25 -> 0.125"]
    failed = [e["reason"] for e in events(tmp_path / "run", "proposal_failed")]
    assert failed == ["6 proposals in a row repeated changes already tried on this parent"] * 3
    assert coordinator.stop_reason() == (
        "3 proposals were refused or failed this session (stop.max_refusals 3): proposal_failed 3; the "
        "last: proposal failed: 6 proposals in a row repeated changes already tried on this parent")


# -- what the review found ---------------------------------------------------------------------


def test_a_run_whose_first_open_failed_can_be_started_again(tmp_path: Path) -> None:
    broken = quadratic_config({"target.repo": f"file://{tmp_path}/no-such-repo.git"})
    with pytest.raises(SwarmError, match="git clone failed"):
        Coordinator(broken, tmp_path / "run", "s1", resume=False)
    assert not (tmp_path / "run" / "ledger.jsonl").exists()
    Coordinator(quadratic_config(), tmp_path / "run", "s2", resume=False).close()


def test_a_git_lock_left_by_a_crash_does_not_block_the_resume(driver: Driver) -> None:
    driver.baseline()
    (driver.run_dir / "repo" / ".git" / "index.lock").write_text("")
    coordinator = driver.reopen("s2", resume=True)
    assert coordinator.state.best_samples() == [10.0]


def test_an_ok_report_without_a_finite_metric_is_recorded_as_no_metric(tmp_path: Path) -> None:
    driver = Driver(tmp_path, {"acceptance.baseline_runs": 2})  # one failed baseline of two: no stop
    unit = driver.coord.next_work("w1", None)
    driver.coord.report(TrialOutcome(unit.trial_id, "w1", "ok", float("nan")))
    assert driver.finished(unit.trial_id)[0]["status"] == "no_metric"
    driver.baseline("w2", 10.0)  # and the run goes on
    driver.coord.close()


def test_a_report_from_another_worker_is_ignored(driver: Driver) -> None:
    unit = driver.coord.next_work("w1", None)
    driver.coord.report(TrialOutcome(unit.trial_id, "w2", "ok", 1.0))
    assert driver.finished(unit.trial_id) == [] and driver.status_of(unit.trial_id) is None


def test_a_retried_announcement_of_a_duplicate_gets_the_same_answer(driver: Driver) -> None:
    driver.baseline()
    info, _bundle = driver.craft("w1", {"train.py": [("A = 1.0", "A = 2.0")]})
    first, _ = dataclasses.astuple(driver.coord.begin_candidate(info))
    twin = dataclasses.replace(info, worker_id="w2")
    duplicate = driver.coord.begin_candidate(twin)
    assert duplicate.refusal == "duplicate"
    assert driver.coord.begin_candidate(twin) == duplicate  # the retry: no second trial
    assert len(events(driver.run_dir, "trial_started")) == 3


def test_the_drivers_worker_list_decides_who_may_confirm(driver: Driver) -> None:
    driver.baseline()
    trial_id, _info, bundle = driver.propose("w1", ("C = 1.0", "C = 0.5"))
    driver.ok(trial_id, "w1", 5.0, bundle)
    driver.coord.set_live({"w1": Placement()})  # a restarted coordinator hears from the driver who is left
    unit = driver.coord.next_work("w1", None)
    assert (unit.kind, driver.coord.state.trials[unit.trial_id].of) == ("confirm", trial_id)


def test_a_proposer_that_raises_is_a_failed_proposal_not_a_dead_worker(tmp_path: Path) -> None:
    class Raises:
        def propose(self, context: ProposalContext) -> Proposal:
            raise RuntimeError("provider exploded")

    config = quadratic_config({"acceptance.baseline_runs": 1, "stop.max_trials": 5})
    coordinator = Coordinator(config, tmp_path / "run", "s1", resume=False)
    thread = threading.Thread(target=run_workers, args=(coordinator, tmp_path / "w", [Raises()]),
                              daemon=True)
    thread.start()
    wait_until = time.monotonic() + 20
    while not events(tmp_path / "run", "proposal_failed") and time.monotonic() < wait_until:
        time.sleep(0.05)
    coordinator.request_stop()
    thread.join(JOIN_S)
    coordinator.close()
    failed = events(tmp_path / "run", "proposal_failed")
    assert failed and failed[0]["reason"] == "the proposer raised RuntimeError: provider exploded"


def test_a_refused_resume_never_deletes_the_runs_repository(driver: Driver) -> None:
    driver.baseline()
    driver.coord.close()
    (driver.run_dir / "ledger.jsonl").rename(driver.run_dir / "ledger.moved")
    with pytest.raises(RunDirError, match="no ledger.jsonl to resume from"):
        Coordinator(driver.config, driver.run_dir, "s2", resume=True)
    with pytest.raises(RunDirError, match="holds a repo/ or an empty ledger.jsonl but no run"):
        Coordinator(driver.config, driver.run_dir, "s3", resume=False)
    assert gitops.has_commit(gitops.open_repo(driver.run_dir / "repo"), driver.coord.state.best.commit)
    (driver.run_dir / "ledger.moved").rename(driver.run_dir / "ledger.jsonl")
    driver.coord = Coordinator(driver.config, driver.run_dir, "s4", resume=True)
    assert driver.coord.state.best_samples() == [10.0]


def test_an_interrupted_creation_leaves_only_a_scratch_folder_the_next_try_replaces(tmp_path: Path) -> None:
    (tmp_path / "run" / ".repo-incoming").mkdir(parents=True)
    (tmp_path / "run" / ".repo-incoming" / "half-copied.py").write_text("")
    coordinator = Coordinator(quadratic_config(), tmp_path / "run", "s1", resume=False)
    coordinator.close()
    assert not (tmp_path / "run" / ".repo-incoming").exists()
    assert (tmp_path / "run" / "repo" / "train.py").exists()


def test_a_worker_told_to_stop_is_not_made_live_again_by_the_driver(driver: Driver) -> None:
    driver.coord.request_stop()
    assert driver.coord.next_work("w2", None).action == "stop"
    driver.coord.set_live({"w1": Placement(), "w2": Placement()})  # w2's run() has not returned to the driver yet
    assert set(driver.coord.roster.live) == {"w1"}


def test_a_worker_the_driver_has_not_placed_waits_and_is_never_taken_for_trusted(driver: Driver) -> None:
    driver.coord.place("w1", Placement(node="trusted1"))
    # w2 asks before the driver's word on it arrives (CI caught a volunteer doing just that)
    assert driver.coord.next_work("w2", None, WorkerSite(host="says-it-is-trusted")).action == "wait"
    assert driver.coord.roster.seat("w2") == Seat("volunteer/", True)  # an announcement now would be untrusted
    driver.coord.place("w2", Placement(node="lent0001", volunteer=True, hardware="gpu:T4"))
    unit = driver.coord.next_work("w2", None, WorkerSite(host="says-it-is-trusted"))
    started = driver.coord.state.trials[unit.trial_id]
    assert (unit.kind, started.hardware, started.node) == ("baseline", "volunteer/gpu:T4", "lent0001")


class _Remembering:
    """Breaks train.py once, then records what it is told while it proposes small moves of B."""

    def __init__(self) -> None:
        self.seen: list[ProposalContext] = []

    def propose(self, context: ProposalContext) -> Proposal | ProposalFailure:
        self.seen.append(context)
        old = context.files["train.py"]
        if len(self.seen) == 1:
            return Proposal({"train.py": old + "raise SystemExit('broken on purpose')\n"}, "break it")
        return Proposal({"train.py": re.sub(r"^B = .*$", f"B = {0.5 + len(self.seen) / 100}", old, flags=re.M)},
                        f"B move {len(self.seen)}")


def test_a_proposer_is_shown_its_own_failed_trial_and_the_winners_so_far(tmp_path: Path) -> None:
    config = quadratic_config({"stop.max_trials": 9, "acceptance.confirm_runs": 0})
    coordinator = Coordinator(config, tmp_path / "run", "s1", resume=False)
    proposer = _Remembering()
    run_workers(coordinator, tmp_path, [proposer])
    coordinator.close()
    # The second proposal is prepared while the first trial still runs; the third knows how it ended.
    assert proposer.seen[1].last_failure is None
    after_crash = proposer.seen[2].last_failure
    assert after_crash is not None and after_crash.startswith("your last change (break it) ended as crash")
    assert "broken on purpose" in after_crash  # the log's tail
    assert proposer.seen[-1].winners and proposer.seen[-1].winners[0].hypothesis.startswith("B move")
    assert all(c.winners == () for c in proposer.seen[:2])  # nothing accepted yet


# -- unions: winners merged into the pool --------------------------------------------------------

MANYKNOB = ROOT / "examples" / "manyknob"


def test_promising_changes_to_adjacent_lines_are_merged_into_a_union_that_becomes_best(tmp_path: Path) -> None:
    # manyknob's thirty constants stand on adjacent lines, as real targets keep them
    config = load_config(ROOT / "configs" / "manyknob.yaml", {
        "target.repo": str(MANYKNOB), "target.budget_s": 0.05,
        "acceptance.false_accept": 0.1, "acceptance.baseline_runs": 3, "acceptance.max_runs": 2})
    driver = Driver(tmp_path, config=config)
    for worker, metric in (("w1", 3.70), ("w2", 3.72), ("w3", 3.74)):  # spread 0.02, 2 degrees of freedom
        driver.baseline(worker, metric)
    k01, info_1, bundle_1 = driver.propose("w1", ("K01 = 1.0", "K01 = 1.25"))
    k02, info_2, bundle_2 = driver.propose("w2", ("K02 = 1.0", "K02 = 1.25"))
    driver.ok(k01, "w1", 3.67, bundle_1)  # each 0.05 better: not yet beyond doubt alone
    driver.ok(k02, "w2", 3.67, bundle_2)
    state = driver.coord.state
    assert [state.trials[t].verdict for t in (k01, k02)] == ["promising", "promising"]

    unit = driver.coord.next_work("w3", None)
    assert unit.trial_id is not None, (unit, state.noise(None), [state.trials[t].gain for t in state.awaiting])
    union = state.trials[unit.trial_id]
    assert (unit.action, unit.kind, union.parts) == ("evaluate", "candidate", (k01, k02))
    repo = driver.coord.pool.repo
    text = repo.git.show(f"{unit.commit}:train.py")
    assert "K01 = 1.25\nK02 = 1.25\nK03 = 1.0\n" in text
    assert repo.commit(unit.commit).parents[0].hexsha == state.best.commit

    driver.ok(unit.trial_id, "w3", 3.42)  # 0.30 better: the two together, beyond doubt
    best = state.best
    assert (best.trial, best.tree) == (union.id, union.tree)
    assert [state.trials[t].verdict for t in (k01, k02)] == ["merged", "merged"]
    message = repo.commit(best.commit).message
    assert f"Swarm-Parts: {k01}, {k02}" in message and f"Swarm-Trial: {union.id}" in message
    rows = {row[5]: row for row in results_lines(driver.run_dir)[1:]}
    assert (rows[k01][3], rows[k02][3], rows[union.id][3]) == ("merged", "merged", "keep")
    assert rows[union.id][4].startswith(f"union of {k01}, {k02}: K01 = 1.0 -> K01 = 1.25")
    started = [e for e in events(driver.run_dir, "trial_started") if e["trial"] == union.id]
    assert started[0]["parts"] == [k01, k02]  # the ledger records what the union combines
    # resumed, the coordinator rebuilds the same pool from the ledger: best, the parts merged
    before = (state.best, [state.trials[t].verdict for t in (k01, k02, union.id)], state.trials[union.id].parts)
    reopened = driver.reopen("s2", resume=True)
    after = reopened.state
    assert (after.best, [after.trials[t].verdict for t in (k01, k02, union.id)], after.trials[union.id].parts) == before
    reopened.close()
