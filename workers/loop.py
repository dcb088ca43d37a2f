"""One worker's autoresearch loop: ask for work, propose, commit, evaluate, report, repeat.

Plain Python: `client` is anything with the coordinator's methods (the Ray actor handle wrapped
with retries in production, the Coordinator object itself in tests).
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, TypeVar

from swarm.core import gitops
from swarm.core.config import SwarmConfig
from swarm.core.envvars import expanded_env, worker_search_path
from swarm.core.preflight import needs_problems, run_environ
from swarm.core.scope import readonly_violation, scope_violation
from swarm.core.values import (
    Admission, CandidateInfo, ContextFile, Cost, TrialDigest, TrialOutcome, WorkerSite, WorkUnit,
)
from workers.classify import classify_trial
from workers.evaluation import Evaluator, TrialRun
from workers.feedback import without_heldout
from workers.hardware import hardware_class
from workers.proposers.base import Proposal, ProposalContext, ProposalFailure, Proposer
from workers.sandbox import scrubbed_env
from workers.workspace import Workspace

__all__ = ["CoordinatorCalls", "WorkerLoop", "PROPOSAL_ATTEMPTS", "expanded_env"]

log = logging.getLogger(__name__)

# A proposal that repeats a change already tried on its parent is not announced (it would be
# refused as a duplicate); the proposer is asked again on the parent's clean tree: a refused
# change is never the base of the next attempt (an agent's edits would pile up otherwise).
PROPOSAL_ATTEMPTS = 6
# How long a stopping worker waits for the proposal it was preparing, so what it cost is recorded.
SETTLE_WAIT_S = 60.0
LOG_TAIL_CHARS = 2000  # of a failed trial's log, shown to the proposer that made it
# While a trial runs the worker asks this often whether best moved, so that a prepared proposal
# which no longer applies is replaced before the trial ends rather than after (an LLM's 20 s).
BEST_POLL_S = 5.0
# Proposals a worker may make during one trial beyond its first: on a newer best, or on the
# candidate it is confirming. Each is paid for even when the trial's outcome leaves it unused.
SPARE_PROPOSALS = 2


class CoordinatorCalls(Protocol):
    """The coordinator's methods a worker calls: `coordinator.client.CoordinatorClient` in a
    swarm, the `Coordinator` object itself in tests."""

    def hello(self, worker_id: str, site: WorkerSite) -> dict[str, str]: ...
    def briefing(self) -> tuple[ContextFile, ...]: ...
    def next_work(self, worker_id: str, have: str | None,
                  site: WorkerSite | None = None) -> WorkUnit: ...
    def begin_candidate(self, info: CandidateInfo) -> Admission: ...
    def report(self, outcome: TrialOutcome) -> None: ...
    def proposal_failed(self, worker_id: str, reason: str, cost: Cost = Cost()) -> None: ...
    def best_now(self, worker_id: str, have: str | None) -> tuple[str, bytes | None]: ...


@dataclass(frozen=True)
class Candidate:
    """A committed proposal in the worker's clone, not yet announced."""

    parent: str
    commit: str
    tree: str
    proposal: Proposal


# Proposals prepared while trials ran, by the parent each was made on; the next `propose` takes
# the one on its parent (or moves one there) and the rest are charged to it.
Prepared = dict[str, "Candidate | ProposalFailure"]


class WorkerLoop:
    def __init__(self, worker_id: str, config: SwarmConfig, client: CoordinatorCalls,
                 root: Path, proposer: Proposer, site: WorkerSite | None = None,
                 best_poll_s: float = BEST_POLL_S, private: tuple[str, ...] = ()) -> None:
        """`site`: where it runs; its hardware class is measured here when the driver did not
        know it. `private`: paths of this machine its trials must not see (the run directory)."""
        self.id = worker_id
        self.config = config
        self.client = client
        self.space = Workspace(root)
        source = Path(config.target.repo)
        hide = (*private, str(source)) if source.is_absolute() else private
        self.evaluator = Evaluator(config, self.space.checkout, root, hide)
        self.proposer = proposer
        site = site or WorkerSite()
        self.site = replace(site, hardware=site.hardware or hardware_class(),
                            host=site.host or platform.node())
        self.have: str | None = None  # the newest best this clone holds
        self.recent: tuple[TrialDigest, ...] = ()
        self.avoid: frozenset[str] = frozenset()  # trees already tried on `have`
        self.prepared: Future[Prepared] | None = None
        self.unpaid = Cost()  # what dropped proposals cost: charged to the next one
        self.last_failure: str | None = None  # shown to the proposer after its own trial failed
        self.last_feedback = ""  # what the checks said of its own last change
        self.briefing: tuple[ContextFile, ...] = ()  # proposer.context, as the run recorded it
        # the held-out metric's lines never reach a proposer, nor the ledger through feedback
        self.heldout = tuple(n for n in (config.target.metric.heldout,) if n)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"propose-{worker_id}")
        self.readonly_hashes: dict[str, str] = {}
        self.best_poll_s = best_poll_s

    def run(self) -> int:
        """Loops until the coordinator says stop; returns how many trials this worker reported."""
        self.readonly_hashes = self.client.hello(self.id, self.site)
        self.briefing = self.client.briefing()
        reported = 0
        try:
            while (unit := self.client.next_work(self.id, self.have, self.site)).action != "stop":
                reported += self._do(unit)
            self._settle_unused()
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
        return reported

    def _settle_unused(self) -> None:
        """Records the cost of proposals the run stopped before they ran (an LLM was paid)."""
        if self.prepared is not None:
            try:
                for left in self.prepared.result(timeout=SETTLE_WAIT_S).values():
                    self.unpaid += _cost_of(left)
            except TimeoutError:
                pass  # still waiting on its provider; documented as not counted
            self.prepared = None
        if self.unpaid.usd > 0:
            self.client.proposal_failed(self.id, "prepared but never run: the swarm stopped",
                                        self.unpaid)

    def _do(self, unit: WorkUnit) -> int:
        self.space.receive(unit.bundle)
        self.have = unit.best_commit if self.space.has(unit.best_commit) else self.have
        self.recent = unit.recent or self.recent
        if unit.action == "wait":
            time.sleep(unit.wait_s)
            return 0
        assert unit.commit is not None, f"a {unit.action} unit names its commit"
        if unit.action == "propose":
            self.avoid = unit.avoid
            return self._propose_and_run(unit.commit)
        assert unit.trial_id is not None, "an evaluate unit names its trial"
        # A confirmed candidate becomes the next best: worth having a proposal ready on it.
        expect = unit.commit if unit.kind == "confirm" else None
        self.client.report(self._evaluate(unit.trial_id, unit.commit, expect=expect))
        return 1

    # -- proposing ------------------------------------------------------------------------

    def _propose_and_run(self, parent: str) -> int:
        candidate = self._charged(self._take_prepared(parent) or self._propose(parent, self.avoid))
        if isinstance(candidate, ProposalFailure):
            self.client.proposal_failed(self.id, candidate.reason, candidate.cost)
            return 0
        proposal = candidate.proposal
        info = CandidateInfo(self.id, candidate.parent, candidate.commit, candidate.tree,
                             proposal.hypothesis, proposal.cost)
        admission = self.client.begin_candidate(info)
        if admission.refusal == "stop" and proposal.cost.usd > 0:  # paid for, never to run: still counted
            self.client.proposal_failed(self.id, "prepared but never run: the swarm stopped",
                                        proposal.cost)
        if admission.refusal or admission.trial_id is None:
            return 0
        outcome = self._evaluate(admission.trial_id, candidate.commit, parent=parent)
        self.client.report(outcome)
        tail = without_heldout((outcome.log or "")[-LOG_TAIL_CHARS:], self.heldout)
        self.last_failure = None if outcome.status == "ok" else (
            f"your last change ({proposal.hypothesis}) ended as {outcome.status}: {outcome.reason}\n"
            f"--- the end of its log ---\n{tail}")
        self.last_feedback = f"({proposal.hypothesis})\n{outcome.feedback}" if outcome.feedback.strip() else ""
        return 1

    def _take_prepared(self, parent: str) -> Candidate | ProposalFailure | None:
        """The proposal prepared on `parent`, or one prepared earlier moved onto it; the others
        prepared are charged to it. None when nothing prepared fits."""
        if self.prepared is None:
            return None
        ready, self.prepared = dict(self.prepared.result()), None
        chosen = ready.pop(parent, None) or self._moved(ready, parent)
        for left in ready.values():
            self.unpaid += _cost_of(left)
        if isinstance(chosen, Candidate) and chosen.tree in self.avoid:
            self.unpaid += chosen.proposal.cost
            return None
        return chosen

    def _moved(self, ready: Prepared, parent: str) -> Candidate | None:
        """The newest prepared candidate replayed onto `parent`, None if every one conflicts.
        The copy costs nothing: its original stays in `ready` and is charged from there."""
        for candidate in reversed([c for c in ready.values() if isinstance(c, Candidate)]):
            moved = self.space.rebase(candidate.commit, parent, candidate.proposal.hypothesis)
            if moved is not None:
                free = replace(candidate.proposal, cost=Cost())
                return Candidate(parent, moved[0], moved[1], free)
        return None

    def _prepare(self, earlier: Future[Prepared] | None, best: str, expect: str | None,
                 trial_over: threading.Event) -> Prepared:
        """Runs in the proposal thread while a trial runs: makes sure a proposal is ready on
        best, on `expect`, and on any newer best announced before the trial ends."""
        ready: Prepared = dict(earlier.result()) if earlier is not None else {}
        wanted = [best] + ([expect] if expect else [])
        spares = SPARE_PROPOSALS
        while True:
            for parent in wanted:
                if parent not in ready and (parent == best or spares > 0):
                    moved = self._moved(ready, parent)
                    if moved is None and parent != best:
                        spares -= 1
                    ready[parent] = moved or self._propose(parent, self.avoid if parent == best else frozenset())
            if trial_over.wait(self.best_poll_s):
                return ready
            try:
                head, bundle = self.client.best_now(self.id, wanted[-1])
                self.space.receive(bundle)
            except Exception as exc:  # noqa: BLE001  (the trial's report will meet the same trouble)
                log.warning("worker %s could not ask for the best: %s", self.id, exc)
                trial_over.wait()
                return ready
            if head not in wanted:
                wanted.append(head)

    def _charged(self, candidate: Candidate | ProposalFailure) -> Candidate | ProposalFailure:
        """candidate with the cost of the proposals dropped before it added to its own."""
        unpaid, self.unpaid = self.unpaid, Cost()
        if isinstance(candidate, ProposalFailure):
            return _plus(candidate, unpaid)
        return replace(candidate, proposal=_plus(candidate.proposal, unpaid))

    def _propose(self, parent: str, avoid: frozenset[str]) -> Candidate | ProposalFailure:
        """One candidate on `parent` that is not in `avoid`, asking the proposer up to
        PROPOSAL_ATTEMPTS times, each time on a clean checkout of `parent`."""
        target = self.config.target
        spent = Cost()  # over the attempts
        for _attempt in range(PROPOSAL_ATTEMPTS):
            checkout = self.space.start_proposal(parent)  # what the last attempt left is gone
            program, winners = self.space.read_text(self.config.program), self.space.winners(parent)
            context = ProposalContext(
                program=program, files=self.space.read_files(target.editable), recent=self.recent,
                checkout=checkout, editable=tuple(target.editable), readonly=tuple(target.readonly),
                winners=winners, last_failure=self.last_failure, feedback=self.last_feedback,
                briefing=self.briefing)
            proposal = _ask(self.proposer, context)
            if isinstance(proposal, ProposalFailure):
                return _plus(proposal, spent)
            spent += proposal.cost
            try:
                commit, tree = self.space.commit_on(parent, proposal.files, proposal.hypothesis)
            except ValueError as exc:  # a path outside the tree: the proposal's fault, not the worker's
                return ProposalFailure(str(exc), spent)
            if tree not in avoid:
                return Candidate(parent, commit, tree, replace(proposal, cost=spent))
            if violation := scope_violation(self.space.changed_paths(parent, commit), target.editable,
                                            target.readonly):
                # the same refused change again: asking again would pay for it again
                return ProposalFailure(f"repeated a change refused as out of scope: {violation}", spent)
        return ProposalFailure(f"{PROPOSAL_ATTEMPTS} proposals in a row repeated changes already "
                               "tried on this parent", spent)

    # -- evaluating -----------------------------------------------------------------------

    def _evaluate(self, trial_id: str, commit: str, parent: str = "",
                  expect: str | None = None) -> TrialOutcome:
        bundle = self.space.bundle(commit, parent) if parent else None
        refusal = self._refusal(commit, parent)
        if refusal:
            return TrialOutcome(trial_id, self.id, "out_of_scope", reason=refusal, bundle=bundle,
                                hardware=self.site.hardware)
        if missing := self._missing_needs():  # this node lacks the data: say so, run nothing
            return TrialOutcome(trial_id, self.id, "crash", reason=missing, bundle=bundle,
                                hardware=self.site.hardware, log=missing + "\n")
        trial_over = threading.Event()
        # The next proposal is prepared while the experiment runs, unless the config asks for
        # autoresearch's sequential loop (the duty-cycle bench compares the two).
        if self.have and self.config.workers.prepare_ahead:
            self.prepared = self._pool.submit(self._prepare, self.prepared, self.have, expect, trial_over)
        try:
            trial = self._run_experiment(trial_id)
        finally:
            trial_over.set()
        tampered = readonly_violation(self.readonly_hashes, self._readonly_now())
        status, metric, metrics, reason = classify_trial(
            trial, self.config.target.metric.name, tampered=tampered,
            tiebreaks=[tiebreak.name for tiebreak in self.config.target.tiebreak])
        seconds = sum(p.result.seconds for p in (trial.run, trial.guard, trial.score) if p)
        return TrialOutcome(trial_id, self.id, status, metric, metrics, seconds,
                            self.site.hardware, reason, trial.log(), bundle, isolated=trial.isolated,
                            feedback=without_heldout(trial.feedback(), self.heldout))

    def _refusal(self, commit: str, parent: str) -> str | None:
        target = self.config.target
        if parent:
            changed = self.space.changed_paths(parent, commit)
            if violation := scope_violation(changed, target.editable, target.readonly):
                return violation
        self.space.check_out(commit)
        return readonly_violation(self.readonly_hashes, self._readonly_now())

    def _missing_needs(self) -> str | None:
        needs = self.config.target.needs
        problems = needs_problems(needs, self.space.checkout, run_environ(self.config, os.environ))
        return "; ".join(f"on {self.site.host}: {p.message}" for p in problems) or None

    def _readonly_now(self) -> dict[str, str]:
        return gitops.file_hashes(self.space.checkout, list(self.readonly_hashes))

    def _run_experiment(self, trial_id: str) -> TrialRun:
        """The trial's commands, run in the checkout (each in its jail unless the config says none)."""
        return self.evaluator.evaluate(trial_id, self._env(trial_id), self.space.tracked_files())

    def _env(self, trial_id: str) -> dict[str, str]:
        path = worker_search_path(sys.executable, os.environ)
        return scrubbed_env(os.environ, {
            **expanded_env(self.config.target.env),
            "HOME": str(self.space.home), "PATH": path, "PYTHONUNBUFFERED": "1",
            "SWARM_BUDGET_S": f"{self.config.target.budget_s:g}", "SWARM_TRIAL_ID": trial_id,
            "SWARM_WORKER_ID": self.id})


_Costly = TypeVar("_Costly", Proposal, ProposalFailure)


def _plus(item: _Costly, spent: Cost) -> _Costly:
    """item with `spent` added to its own cost."""
    return replace(item, cost=item.cost + spent)


def _cost_of(prepared: Candidate | ProposalFailure) -> Cost:
    return prepared.proposal.cost if isinstance(prepared, Candidate) else prepared.cost


def _ask(proposer: Proposer, context: ProposalContext) -> Proposal | ProposalFailure:
    """A proposer's answer; its exception is a failed proposal, not a dead worker."""
    try:
        return proposer.propose(context)
    except Exception as exc:  # noqa: BLE001  (any proposer bug must leave the worker running)
        return ProposalFailure(f"the proposer raised {exc.__class__.__name__}: {exc}"[:500])
