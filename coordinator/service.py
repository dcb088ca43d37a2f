"""The coordinator: answers workers and the driver, and carries out what `decide` rules.

Plain Python, no Ray: `coordinator/actor.py` wraps it. Its parts: the run directory (lock,
ledger, logs, results.tsv; `rundir`), the pool (the canonical git repository; `pool`), who works
where and whom it trusts (`roster`), and the state replayed from the ledger (`state`). Every
state change is a ledger event, written (fsync'd) before it is applied and before the caller
hears back.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from itertools import islice
from pathlib import Path

from coordinator import decide
from coordinator.liveness import Heartbeat, silent_for
from coordinator.roster import Roster
from coordinator.rundir import open_run, releasing_on_error
from coordinator.state import BestRecord, SwarmState, TrialRecord
from coordinator.status import RunStatus, latency_of, summarize
from coordinator.stores import PoolStore, RunRecord
from coordinator.trackers import Follower, start_follower
from swarm.core.config import SwarmConfig
from swarm.core.events import (
    Judged, LedgerEvent, ProposalFailed, SessionEnded, SessionStarted, TrialFinished, TrialStarted,
)
from swarm.core.scope import scope_violation
from swarm.core.stats import mean
from swarm.core.values import (
    ContextFile,
    Admission, CandidateInfo, Cost, Placement, TrialKind, TrialOutcome, TrialStatus, WorkerSite,
    WorkUnit,
)

__all__ = ["Coordinator", "UNPLACED_WAIT_S"]

UNPLACED_WAIT_S = 0.5  # a worker started before its placement reached the coordinator asks again
# Trees already tried on best that a proposing worker is told of (it avoids them without asking);
# an older duplicate is still refused when it is announced.
AVOID_AT_MOST = 1000
# Of a trial's feedback (SWARM_FEEDBACK_FILE) the ledger keeps this much: the digest shows less,
# and a run of 100,000 trials must not carry 8 KB each.
FEEDBACK_KEPT = 2000
UNION_SCRATCH_REF = "refs/swarm/unions/building"  # the union being merged; kept by its trial's id once it starts


class Coordinator:
    _follower: Follower | None  # tracking.kind set: the thread that logs the ledger to the tracker

    def __init__(self, config: SwarmConfig, run_dir: Path, session: str, resume: bool) -> None:
        opened = open_run(run_dir, config, session, resume)
        with releasing_on_error(opened.directory):
            self._begin(config, session, opened.directory, opened.pool, opened.state, opened.restarted,
                        time.time, opened.torn_reports)
            # the driver just started this coordinator: its session is live from here
            self._heartbeat: Heartbeat | None = Heartbeat(run_dir, session)
        if config.tracking.kind is not None:  # a thread that tails the ledger into the tracker
            self._follower = start_follower(config, run_dir)

    @classmethod
    def over(cls, config: SwarmConfig, session: str, record: RunRecord, pool: PoolStore, state: SwarmState,
             clock: Callable[[], float]) -> Coordinator:
        """A coordinator over another run record and pool, on another clock: the simulator's."""
        coordinator = cls.__new__(cls)
        coordinator._begin(config, session, record, pool, state, False, clock)
        coordinator._heartbeat = None
        return coordinator

    def _begin(self, config: SwarmConfig, session: str, record: RunRecord, pool: PoolStore,
               state: SwarmState, restarted: bool, clock: Callable[[], float],
               torn_reports: dict[str, str] | None = None) -> None:
        self.config, self.session, self.clock = config, session, clock
        self._follower = None
        self.roster = Roster()
        self.stop_requested = False
        self.report_seconds: deque[float] = deque(maxlen=10_000)  # time to handle each result
        self.directory, self.pool, self.state = record, pool, state
        if not restarted:
            self._record(SessionStarted(session=session, gpus_per_worker=config.workers.gpus_per_worker))
        # also after a crash between session_started and here
        for trial_id in decide.orphaned_trials(self.state, session):
            self._finish_lost(trial_id, (torn_reports or {}).get(trial_id, "its session ended before it reported"))
        self.session_start = self.state.session_starts.get(session, clock())
        self.pool.show_best(self._best.commit)
        self.pool.open_merge_worktree(self._best.commit)
        self._settle()

    @property
    def _best(self) -> BestRecord:
        return self.state.current_best

    def close(self) -> None:
        """Releases the run directory (a process that exits releases it too)."""
        self._close_tracking()
        self.pool.close()
        self.directory.close()

    # -- what workers call ----------------------------------------------------------------

    def hello(self, worker_id: str, site: WorkerSite) -> dict[str, str]:
        """A worker joins; returns what it needs to check trials: the readonly files' hashes."""
        self.roster.heard_from(worker_id, site)
        assert self.state.run_info is not None
        return self.state.run_info.readonly_hashes

    def briefing(self) -> tuple[ContextFile, ...]:
        """proposer.context's files as the run recorded them when it started."""
        assert self.state.run_info is not None
        return tuple(ContextFile(name, text) for name, text in self.state.run_info.briefing.items())

    def next_work(self, worker_id: str, have: str | None, site: WorkerSite | None = None) -> WorkUnit:
        self.roster.heard_from(worker_id, site)
        abandoned = self.state.inflight_of(worker_id)
        for trial_id in abandoned:
            self._finish_lost(trial_id, "its worker asked for new work without reporting it")
        if abandoned:
            self._settle()  # a lost re-run of a larger step may free a smaller winner's verdict
        best = self._best.commit
        if self.roster.unplaced(worker_id) and not self.stop_reason():
            return WorkUnit("wait", best, wait_s=UNPLACED_WAIT_S)
        seat = self.roster.seat(worker_id)
        choice = decide.assign(self.state, worker_id, set(self.roster.live), self.config.acceptance,
                               self.stop_reason(), winding_down=self._budget_spent() is not None,
                               now=self.clock(), hardware=seat.hardware,
                               volunteers=self.roster.volunteers())
        if choice.action == "stop":
            self.roster.sent_home(worker_id)
            return WorkUnit("stop", best)
        if choice.action == "wait":
            return WorkUnit("wait", best, wait_s=choice.wait_s)
        if choice.action == "propose":
            parent = choice.commit  # best, or the union on it being judged
            tried = self.state.tried.get(parent, {})
            avoid = frozenset(islice(reversed(tried), AVOID_AT_MOST)) | {self.state.tree_of.get(parent, "")}
            return WorkUnit("propose", best, commit=parent, bundle=self.pool.bundle(parent, have),
                            recent=decide.recent_trials(self.state), avoid=avoid)
        if choice.parts:
            choice = self._build_union(choice)
            if not choice.commit:
                return self.next_work(worker_id, have, site)  # its parts conflicted: ask again
        assert choice.kind is not None
        trial_id = self._start_trial(worker_id, choice.kind, choice.commit, choice.tree,
                                     choice.parent, choice.hypothesis, of=choice.of, parts=choice.parts,
                                     # a rebased winner re-run by a volunteer needs a trusted confirmation
                                     volunteer=seat.volunteer and choice.kind == "candidate")
        if choice.parts:
            self.pool.keep(f"refs/swarm/unions/{trial_id}", choice.commit)
        return WorkUnit("evaluate", best, trial_id=trial_id, kind=choice.kind, commit=choice.commit,
                        bundle=self.pool.bundle(choice.commit, have))

    def best_now(self, worker_id: str, have: str | None) -> tuple[str, bytes | None]:
        """Where proposals go now (best, or the union on it being judged) and the objects `have`
        lacks of it: a worker mid-trial asks, so as to prepare its next proposal where the next
        `propose` will send it."""
        head = decide.frontier(self.state, self.config.acceptance)
        return head, self.pool.bundle(head, have)

    def begin_candidate(self, info: CandidateInfo) -> Admission:
        """Registers a committed proposal: its trial id, and why it must not run (if so)."""
        earlier = decide.earlier_announcement(self.state, info, self.session)
        if earlier is not None:  # a retry after the coordinator restarted mid-call
            return Admission(earlier.id, "duplicate" if earlier.status == "duplicate" else None)
        if self.stop_reason() or self._budget_spent():
            return Admission(None, "stop")
        duplicate = decide.is_duplicate(self.state, info.parent, info.tree)
        trial_id = self._start_trial(info.worker_id, "candidate", info.commit, info.tree,
                                     info.parent, info.hypothesis, cost=info.cost,
                                     volunteer=self.roster.seat(info.worker_id).volunteer)
        if duplicate:
            self._record(TrialFinished(trial=trial_id, status="duplicate",
                                       reason="the same change was already tried on this parent"))
            self.directory.write_results(self.state)
            return Admission(trial_id, "duplicate")
        return Admission(trial_id)

    def report(self, outcome: TrialOutcome) -> None:
        """Records a finished trial, then makes every verdict that it allows. Idempotent."""
        started = time.perf_counter()
        with self.directory.one_sync():
            self._record_outcome(outcome)
        self.report_seconds.append(time.perf_counter() - started)

    def _record_outcome(self, outcome: TrialOutcome) -> None:
        trial = self.state.trials.get(outcome.trial_id)
        if trial is None or trial.status is not None or trial.worker != outcome.worker_id:
            return  # a retry of a report already recorded, a trial already lost, or not its own
        status, reason = decide.checked_status(outcome)
        if self.pool.keep_trial(trial.id, trial.commit, outcome.bundle):
            status, reason = self._recheck_scope(trial, status, reason)
        elif status != "lost":
            status, reason = "lost", "its commit never reached the coordinator"
        self.directory.write_log(trial.id, outcome.log)
        self._record(TrialFinished(trial=trial.id, status=status,
                                   metric=outcome.metric if status == "ok" else None,
                                   metrics=outcome.metrics, seconds=round(outcome.seconds, 3),
                                   reported_hardware=outcome.hardware, reason=reason,
                                   isolated=outcome.isolated, feedback=outcome.feedback[:FEEDBACK_KEPT]))
        self._settle()

    def proposal_failed(self, worker_id: str, reason: str, cost: Cost = Cost()) -> None:
        self._record(ProposalFailed(worker=worker_id, reason=reason, tokens_in=cost.tokens_in,
                                    tokens_out=cost.tokens_out, cost_usd=cost.usd))

    def worker_lost(self, worker_id: str, reason: str) -> None:
        """The driver saw a worker die: its trial in flight is lost, owed re-runs are requeued."""
        self.roster.lost(worker_id)
        with self.directory.one_sync():
            for trial_id in self.state.inflight_of(worker_id):
                self._finish_lost(trial_id, reason)
            self._settle()

    # -- what the driver calls ------------------------------------------------------------

    def request_stop(self) -> None:
        self.stop_requested = True

    def place(self, worker_id: str, placement: Placement) -> None:
        self.roster.place(worker_id, placement)
        self._heard_from_driver()

    def set_live(self, placements: dict[str, Placement]) -> None:
        self.roster.set_live(placements)
        self._heard_from_driver()

    def end_session(self, reason: str) -> None:
        """The driver ends its session cleanly, its workers stopped: what they had in flight is
        lost, and the ledger says the session ended (so `swarm status` shows it stopped)."""
        for trial_id in list(self.state.inflight):
            if self.state.trials[trial_id].session == self.session:
                self._finish_lost(trial_id, f"its session ended before it reported ({reason})")
        if self.session not in self.state.session_ends:  # a retried call records it once
            self._record(SessionEnded(session=self.session, reason=reason))
        self.directory.write_results(self.state)
        self._close_tracking()  # the driver kills this process next: flush the tracker now

    def _close_tracking(self) -> None:
        """The tracker gets what the ledger holds (a few seconds at most: what does not make it
        is caught up from the ledger when the run is resumed), and its run is finished."""
        if self._follower is not None:
            self._follower.close()
            self._follower = None

    def _heard_from_driver(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.beat()

    def driver_silence_s(self) -> float:
        return self.roster.driver_silence_s()

    def status(self) -> RunStatus:
        reason = self.stop_reason() or self._budget_spent()
        driver = silent_for(self.roster.driver_silence_s(), time.time())
        idle = "gone with the driver" if driver.phase == "gone" else "proposing"
        status = summarize(self.state, self.config, self.roster.sites(), self.session_start, reason,
                           idle=idle, driver=driver)
        failed = decide.failed_stop(self.state, self.config.stop, self.config.acceptance)
        return replace(status, report_latency=latency_of(list(self.report_seconds)),
                       stop_failed=failed is not None and reason == failed)

    # -- decisions, carried out -----------------------------------------------------------

    def stop_reason(self) -> str | None:
        """Why no new work at all starts (None while the run goes on)."""
        return decide.stop_reason(self.state, self.config.stop, self.config.target.metric.direction,
                                  self.clock() - self.session_start, self.stop_requested,
                                  workers=self._workers(), acceptance=self.config.acceptance)

    def _workers(self) -> int:
        """Workers now, or the config's count while none has asked yet (a resumed run settles
        before its workers come back, and union patience grows with the swarm)."""
        count = self.config.workers.count
        return len(self.roster.live) or (count if isinstance(count, int) and count > 0 else 1)

    def _budget_spent(self) -> str | None:
        return decide.budget_spent(self.state, self.config.stop)

    def _settle(self) -> None:
        """Makes every verdict the recorded results allow, one at a time (each may move best)."""
        while judgements := decide.next_judgements(self.state, self.config.acceptance,
                                                   self.config.target.metric.direction,
                                                   workers=self._workers(),
                                                   winding_down=self._budget_spent() is not None,
                                                   tiebreaks=self.config.target.tiebreak):
            for judgement in judgements:
                self._carry_out(judgement)
        self.directory.write_results(self.state)

    def _carry_out(self, j: decide.Judgement) -> None:
        event = Judged(trial=j.trial, verdict=j.verdict, reference=j.reference, required=j.required,
                       improvement=j.improvement, runs=j.runs, reason=j.reason)
        if j.verdict == "accepted":
            event = event.model_copy(update={"best_commit": self._commit_best(j.trial)})
        elif j.verdict == "rebased":
            event = event.model_copy(update=self._replay_onto_best(j.trial))
        self._record(event)
        if event.verdict == "accepted":
            self.pool.show_best(self._best.commit)  # a union's parts are merged by the same event

    def _build_union(self, choice: decide.Assignment) -> decide.Assignment:
        """The union's commit: its parts merged onto best, the largest gain first. A part that
        conflicts with best is judged stale_conflict; one that clashes only with a larger part
        is left out of this union (it may make the next). Fewer than two parts make no union:
        the commit is left empty, and the parts race alone."""
        parts = [self.state.trials[p] for p in choice.parts]
        best = self._best.commit
        message = (f"union of {', '.join(p.id for p in parts)}\n\n"
                   + "\n".join(f"{p.id}: {p.hypothesis}" for p in parts))
        merged = self.pool.union([(p.commit, p.parent) for p in parts], best, message, UNION_SCRATCH_REF)
        for index in merged.conflicted:
            self._record(Judged(trial=parts[index].id, verdict="stale_conflict", improvement=parts[index].gain,
                                runs=parts[index].judged_runs, reason=f"conflicts with best {best[:7]}"))
        included = tuple(parts[i].id for i in merged.included)
        if len(included) < 2 or merged.commit is None or merged.tree is None \
                or merged.tree == self._best.tree or decide.union_tried(self.state, best, merged.tree):
            for alone in (self.state.trials[p] for p in included):  # no union of them: each races alone
                self._record(Judged(trial=alone.id, verdict="promising", improvement=alone.gain, alone=True,
                                    runs=alone.judged_runs, reason="no union could be made of it"))
            self._settle()  # a part refused may free a rebase, and results.tsv shows the verdicts
            return replace(choice, commit="")
        hypothesis = "union of " + ", ".join(included) + ": " + "; ".join(
            self.state.trials[p].hypothesis for p in included)
        return replace(choice, commit=merged.commit, tree=merged.tree, parts=included,
                       hypothesis=hypothesis[:1000])

    def _commit_best(self, trial_id: str) -> str:
        trial = self.state.trials[trial_id]
        runs = [r.metric for r in decide.counted_runs(self.state, trial_id) if r.metric is not None]
        trailers = (f"Swarm-Trial: {trial.id}\nSwarm-Worker: {trial.worker}\n"
                    f"Swarm-Metric: {self.config.target.metric.name}={mean(runs):.6g}\n"
                    f"Swarm-Runs: {len(runs)}")
        counted = [r.id for r in decide.counted_runs(self.state, trial_id)]
        for tiebreak in self.config.target.tiebreak:  # the held-out metric never: agents read git log
            if values := self.state.values_of(tiebreak.name, counted):
                trailers += f"\nSwarm-Metric: {tiebreak.name}={mean(values):.6g}"
        if trial.parts:
            trailers += f"\nSwarm-Parts: {', '.join(trial.parts)}"
        message = f"{trial.hypothesis or 'an unnamed change'}\n\n{trailers}"
        return self.pool.commit_best(trial.tree, self._best.commit, message)

    def _replay_onto_best(self, trial_id: str) -> dict[str, str]:
        """What a stale winner's replay onto best turned its verdict into, as event fields."""
        trial, best = self.state.trials[trial_id], self._best
        replayed = self.pool.replay(trial.commit, best.commit,
                                    f"{trial.hypothesis}\n\nSwarm-Rebased-From: {trial.id}",
                                    f"refs/swarm/rebased/{trial.id}")
        if replayed.tree is None or replayed.commit is None:
            return {"verdict": "stale_conflict", "reason": f"conflicts with best {best.commit[:7]}"}
        if replayed.tree == best.tree:
            return {"verdict": "discard", "reason": "its change is already in best"}
        return {"commit": replayed.commit, "tree": replayed.tree, "parent": best.commit}

    # -- plumbing -------------------------------------------------------------------------

    def _start_trial(self, worker_id: str, kind: TrialKind, commit: str, tree: str,
                     parent: str, hypothesis: str, of: str | None = None, cost: Cost = Cost(),
                     volunteer: bool = False, parts: tuple[str, ...] = ()) -> str:
        trial_id = self.state.next_trial_id()
        self._record(TrialStarted(
            trial=trial_id, kind=kind, worker=worker_id, commit=commit, tree=tree, parent=parent,
            session=self.session, of=of, parts=list(parts) or None, hypothesis=hypothesis,
            hardware=self.roster.seat(worker_id).hardware, volunteer=volunteer,
            node=self.roster.node_of(worker_id), tokens_in=cost.tokens_in,
            tokens_out=cost.tokens_out, cost_usd=cost.usd))
        return trial_id

    def _finish_lost(self, trial_id: str, reason: str) -> None:
        self._record(TrialFinished(trial=trial_id, status="lost", reason=reason))

    def _recheck_scope(self, trial: TrialRecord, status: TrialStatus,
                       reason: str) -> tuple[TrialStatus, str]:
        # The worker checked already; the coordinator does not take its word for it.
        changed = self.pool.changed_paths(trial.parent, trial.commit)
        violation = scope_violation(changed, self.config.target.editable, self.config.target.readonly)
        return ("out_of_scope", violation) if violation else (status, reason)

    def _record(self, event: LedgerEvent) -> None:
        self.state.apply(self.directory.record(event))
