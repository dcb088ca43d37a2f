"""workers.prepare_ahead: true proposes while a trial runs, false proposes only between trials.

One worker loop in a thread against the in-process Coordinator (real git, real subprocess
trials of the quadratic example). The worker records when each trial ran and the proposer when
each proposal was made; the two sets of intervals overlap only when the worker prepares ahead.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from coordinator.service import Coordinator
from swarm.core.values import WorkerSite
from tests.test_coordinator_inprocess import Serialized, quadratic_config
from workers.loop import WorkerLoop
from workers.proposers.base import Proposal, ProposalContext, ProposalFailure
from workers.proposers.mutate import MutateProposer

Interval = tuple[float, float]
PROPOSE_S = 0.3  # long enough that a proposal made during a 0.4 s trial surely overlaps it
JOIN_S = 60.0


class SlowProposer:
    """MutateProposer that takes PROPOSE_S, like a (fast) LLM, and records when it ran."""

    def __init__(self) -> None:
        self.inner = MutateProposer(seed=0)
        self.calls: list[Interval] = []

    def propose(self, context: ProposalContext) -> Proposal | ProposalFailure:
        started = time.monotonic()
        time.sleep(PROPOSE_S)
        proposal = self.inner.propose(context)
        self.calls.append((started, time.monotonic()))
        return proposal


class TimedLoop(WorkerLoop):
    """WorkerLoop that records when each of its experiments ran."""

    trials: list[Interval]

    def _run_experiment(self, trial_id: str):  # type: ignore[no-untyped-def]
        started = time.monotonic()
        try:
            return super()._run_experiment(trial_id)
        finally:
            self.trials = [*getattr(self, "trials", []), (started, time.monotonic())]


def overlap_s(proposals: list[Interval], trials: list[Interval]) -> float:
    """Seconds during which a proposal was being made while a trial ran."""
    return sum(max(0.0, min(p_end, t_end) - max(p_start, t_start))
               for p_start, p_end in proposals for t_start, t_end in trials)


def run_one_worker(tmp_path: Path, prepare_ahead: bool) -> tuple[list[Interval], list[Interval]]:
    """(proposal intervals, trial intervals) of one worker running 5 trials."""
    config = quadratic_config({"target.budget_s": 0.4, "stop.max_trials": 5, "acceptance.baseline_runs": 1,
                               "acceptance.confirm_runs": 0, "workers.prepare_ahead": prepare_ahead})
    coordinator = Coordinator(config, tmp_path / "run", "s1", resume=False)
    proposer = SlowProposer()
    loop = TimedLoop("w0", config, Serialized(coordinator), tmp_path / "w0", proposer, WorkerSite(hardware="cpu:test"))
    errors: list[BaseException] = []

    def work() -> None:
        try:
            loop.run()
        except BaseException as exc:  # noqa: BLE001  (a thread swallows it otherwise)
            errors.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(JOIN_S)
    coordinator.close()
    if thread.is_alive():
        pytest.fail(f"the worker did not stop within {JOIN_S} s")
    if errors:
        raise errors[0]
    return proposer.calls, loop.trials


def test_prepare_ahead_is_on_by_default() -> None:
    assert quadratic_config().workers.prepare_ahead is True


def test_prepare_ahead_proposes_while_trials_run(tmp_path: Path) -> None:
    proposals, trials = run_one_worker(tmp_path, prepare_ahead=True)
    assert len(trials) == 5
    assert overlap_s(proposals, trials) > PROPOSE_S  # at least one whole proposal inside a trial


def test_without_prepare_ahead_the_worker_proposes_only_between_trials(tmp_path: Path) -> None:
    proposals, trials = run_one_worker(tmp_path, prepare_ahead=False)
    assert len(trials) == 5
    assert len(proposals) == 4  # one per trial after the baseline, none made ahead and wasted
    assert overlap_s(proposals, trials) == 0.0
