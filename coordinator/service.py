"""The coordinator: owns the run directory (canonical repo, ledger, logs) and answers workers.

Plain Python, no Ray: `coordinator/actor.py` wraps it. Every state change is a ledger event,
written (fsync'd) before it is applied and before the caller hears back.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from collections import deque
from pathlib import Path
from typing import Any

import git

from coordinator import decide
from coordinator.results import ResultsFile
from coordinator.state import VOLUNTEER_CLASS, SwarmState
from swarm.core import gitops
from swarm.core.config import SwarmConfig
from swarm.core.errors import RunDirError
from swarm.core.ledger import Ledger, read_events
from swarm.core.stats import mean
from swarm.core.scope import matching_paths, scope_violation
from swarm.core.values import CandidateInfo, TrialOutcome, WorkUnit

__all__ = ["Coordinator"]

_INCOMING = ".repo-incoming"  # where a new run's target is imported before it is moved into place
_STALE_LOCK_S = 5.0  # a git lock this old has no live git process behind it
UNPLACED_WAIT_S = 0.5  # a worker started before its placement reached the coordinator asks again

log = logging.getLogger(__name__)


class Coordinator:
    def __init__(self, config: SwarmConfig, run_dir: Path, session: str, resume: bool) -> None:
        self.config = config
        self.run_dir = run_dir
        self.session = session
        self.state = SwarmState()
        self.live: dict[str, dict[str, Any]] = {}  # worker -> where it runs, in its own words
        # worker -> what the driver, which placed it, says: node, volunteer, hardware. Trusted
        # over the worker's word: a volunteer's worker runs code its owner may have changed.
        self.placement: dict[str, dict[str, Any]] = {}
        # Once a driver places workers, a worker it has not placed is not trusted: it may be
        # a volunteer whose placement has not arrived yet (or was lost with a restart).
        self.driver_places = False
        self.driver_seen = time.monotonic()
        self.stopped: set[str] = set()  # workers told to stop in this session: they are leaving
        self.stop_requested = False
        self.report_seconds: deque[float] = deque(maxlen=10_000)  # time to handle each result
        self.results = ResultsFile(run_dir / "results.tsv", config.target.metric.name)
        self._open(resume)

    # -- opening a run --------------------------------------------------------------------

    def _open(self, resume: bool) -> None:
        """Opens or creates the run. A refused or failed open changes nothing on disk, except
        the scratch clone of a run being created (so the next try starts clean)."""
        self._lock_run_dir()
        try:
            _clear_stale_git_locks(self.run_dir / "repo" / ".git")
            self._load(resume)
        except BaseException as exc:
            if getattr(self, "ledger", None):
                self.ledger.close()
            shutil.rmtree(self.run_dir / _INCOMING, ignore_errors=True)
            self._lock.close()  # a refused open must not keep the run directory
            if isinstance(exc, git.GitCommandError):
                raise RunDirError(f"{self.run_dir}: git failed while opening the run: "
                                  f"{' '.join(str(exc).split())[:300]}") from None
            raise

    def _load(self, resume: bool) -> None:
        ledger_path = self.run_dir / "ledger.jsonl"
        if ledger_path.exists():
            self.ledger = Ledger(ledger_path)  # opening it first drops a line torn by a crash
        events = list(read_events(ledger_path))
        restarted = any(e.get("session") == self.session for e in events
                        if e["event"] == "session_started")
        if events and not (resume or restarted):
            raise RunDirError(f"{self.run_dir} already holds a run; pass --resume to continue it "
                              "or --run-dir to start another")
        if not events and resume:
            raise RunDirError(f"{self.run_dir}: no ledger.jsonl to resume from")
        for event in events:
            self.state.apply(event)
        if events:
            self._check_same_target()
            self.repo = gitops.open_repo(self.run_dir / "repo")
        else:
            self._create_run(ledger_path)
        if not restarted:
            self._record({"event": "session_started", "session": self.session,
                          "gpus_per_worker": self.config.workers.gpus_per_worker})
        self._lose_orphans()  # also after a crash between session_started and this line
        self.session_start = self._session_start_time(events)
        self._sync_refs()
        self._merge_worktree = self._open_merge_worktree()
        self._settle()

    def _lock_run_dir(self) -> None:
        # Two coordinators appending to one ledger would corrupt the run; the lock dies with
        # its process, so a crashed coordinator never blocks its own resume.
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.run_dir / ".coordinator.lock", "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.seek(0)
            holder = self._lock.read().strip() or "another process"
            raise RunDirError(f"{self.run_dir} is in use by the coordinator of {holder}; "
                              "stop that run first") from None
        self._lock.truncate(0)
        self._lock.write(f"pid {os.getpid()}\n")
        self._lock.flush()

    def close(self) -> None:
        """Releases the run directory (a process that exits releases it too)."""
        self.ledger.close()
        self._lock.close()

    def _create_run(self, ledger_path: Path) -> None:
        """All or nothing: the target is imported into a scratch folder, moved into place, and
        only then is the ledger created, atomically, with its first event."""
        repo_dir, incoming = self.run_dir / "repo", self.run_dir / _INCOMING
        if repo_dir.exists() or ledger_path.exists():
            raise RunDirError(f"{self.run_dir} holds a repo/ or an empty ledger.jsonl but no run; "
                              "move them away or choose another --run-dir")
        shutil.rmtree(incoming, ignore_errors=True)
        gitops.import_target(self.config.target.repo, incoming).close()
        incoming.rename(repo_dir)
        self.repo = gitops.open_repo(repo_dir)
        commit = self.repo.head.commit.hexsha
        readonly = matching_paths(self.repo.git.ls_files().splitlines(), self.config.target.readonly)
        first = {"event": "run_started", "commit": commit, "tree": gitops.tree_of(self.repo, commit),
                 "readonly_hashes": gitops.file_hashes(repo_dir, readonly),
                 "config": self.config.model_dump(mode="json")}
        self.ledger = Ledger.create(ledger_path, first)
        self.state.apply(next(read_events(ledger_path)))

    def _check_same_target(self) -> None:
        recorded = self.state.run_info["config"]["target"]
        given = self.config.target.model_dump(mode="json")
        for key in ("editable", "readonly", "run", "metric"):
            if recorded[key] != given[key]:
                raise RunDirError(f"{self.run_dir}: target.{key} was {recorded[key]!r} when the run "
                                  f"started, now {given[key]!r}; start a new run to change it")

    def _lose_orphans(self) -> None:
        # Workers of an earlier session are gone with it; their trials will never report.
        for trial_id in list(self.state.inflight):
            if self.state.trials[trial_id].session != self.session:
                self._finish_lost(trial_id, "its session ended before it reported")

    def _session_start_time(self, events: list[dict[str, Any]]) -> float:
        for event in events:
            if event["event"] == "session_started" and event["session"] == self.session:
                return event["ts"]
        return time.time()

    def _sync_refs(self) -> None:
        # The ledger is the truth; a crash between an event and its ref update is mended here.
        gitops.set_ref(self.repo, f"refs/heads/{gitops.BEST_BRANCH}", self.state.best.commit)
        self.repo.git.reset("--hard", "-q")

    def _open_merge_worktree(self) -> git.Repo:
        path = self.run_dir / ".merge"
        self.repo.git.worktree("prune")
        if not (path / ".git").exists():
            self.repo.git.worktree("add", "--force", "--detach", str(path), self.state.best.commit)
        return gitops.open_repo(path)

    # -- what workers call ----------------------------------------------------------------

    def hello(self, worker_id: str, where: dict[str, Any]) -> dict[str, Any]:
        """A worker joins; returns what it needs to check trials (the readonly hashes)."""
        self.live[worker_id] = where
        return {"readonly_hashes": self.state.run_info["readonly_hashes"]}

    def next_work(self, worker_id: str, have: str | None,
                  where: dict[str, Any] | None = None) -> WorkUnit:
        # Said on every call: a restarted coordinator re-learns who works where.
        self.live[worker_id] = where if where is not None else self.live.get(worker_id, {})
        abandoned = self.state.inflight_of(worker_id)
        for trial_id in abandoned:
            self._finish_lost(trial_id, "its worker asked for new work without reporting it")
        if abandoned:
            self._settle()  # a lost re-run of a larger step may free a smaller winner's verdict
        if self.driver_places and worker_id not in self.placement and not self.stop_reason():
            return WorkUnit("wait", self.state.best.commit, wait_s=UNPLACED_WAIT_S)
        hardware, _volunteer = self._seat(worker_id)
        choice = decide.assign(self.state, worker_id, set(self.live), self.config.acceptance,
                               self.stop_reason(), winding_down=self._budget_spent() is not None,
                               now=time.time(), hardware=hardware, volunteers=self._volunteers())
        best = self.state.best.commit
        if choice.action == "stop":
            self.live.pop(worker_id, None)  # gone: owed confirmations must not wait for it
            self.stopped.add(worker_id)
            return WorkUnit("stop", best)
        if choice.action == "wait":
            return WorkUnit("wait", best, wait_s=choice.wait_s)
        if choice.action == "propose":
            avoid = frozenset(self.state.tried.get(best, set()) | {self.state.best.tree})
            return WorkUnit("propose", best, commit=best, bundle=self._bundle(best, have),
                            recent=decide.recent_trials(self.state), avoid=avoid)
        trial_id = self._start_trial(worker_id, choice)
        return WorkUnit("evaluate", best, trial_id=trial_id, kind=choice.kind, commit=choice.commit,
                        bundle=self._bundle(choice.commit, have))

    def best_now(self, worker_id: str, have: str | None) -> tuple[str, bytes | None]:
        """The best commit and the objects `have` lacks of it: a worker mid-trial asks, so as to
        prepare its next proposal on a best that moved since the trial began."""
        best = self.state.best.commit
        return best, self._bundle(best, have)

    def begin_candidate(self, info: CandidateInfo) -> tuple[str | None, str | None]:
        """Registers a committed proposal: (trial id, None) to run it, or why it must not run."""
        retried = self._same_announcement(info)
        if retried:
            return retried  # a retry after the coordinator restarted mid-call
        if self.stop_reason() or self._budget_spent():
            return None, "stop"
        duplicate = (info.tree in self.state.tried.get(info.parent, ())
                     or info.tree == self.state.tree_of.get(info.parent))
        trial_id = self.state.next_trial_id()
        hardware, volunteer = self._seat(info.worker_id)
        self._record({"event": "trial_started", "trial": trial_id, "kind": "candidate",
                      "worker": info.worker_id, "commit": info.commit, "tree": info.tree,
                      "parent": info.parent, "session": self.session,
                      "hardware": hardware, "volunteer": volunteer, "node": self._node_of(info.worker_id),
                      "hypothesis": info.hypothesis,
                      "tokens_in": info.tokens_in, "tokens_out": info.tokens_out,
                      "cost_usd": info.cost_usd})
        if duplicate:
            self._record({"event": "trial_finished", "trial": trial_id, "status": "duplicate",
                          "reason": "the same change was already tried on this parent"})
            self._write_results()
            return trial_id, "duplicate"
        return trial_id, None

    def _same_announcement(self, info: CandidateInfo) -> tuple[str, str | None] | None:
        mine = [t for t in self.state.trials.values()
                if t.worker == info.worker_id and t.session == self.session]
        last = mine[-1] if mine else None
        if last and (last.kind, last.parent, last.tree) == ("candidate", info.parent, info.tree):
            if last.status is None:
                return last.id, None
            if last.status == "duplicate":
                return last.id, "duplicate"
        return None

    def report(self, outcome: TrialOutcome) -> None:
        """Records a finished trial, then makes every verdict that it allows. Idempotent."""
        started = time.perf_counter()
        self._record_outcome(outcome)
        self.report_seconds.append(time.perf_counter() - started)

    def _record_outcome(self, outcome: TrialOutcome) -> None:
        trial = self.state.trials.get(outcome.trial_id)
        if trial is None or trial.status is not None or trial.worker != outcome.worker_id:
            return  # a retry of a report already recorded, a trial already lost, or not its own
        status, reason = decide.checked_status(outcome)
        if outcome.bundle is not None:
            gitops.read_bundle(self.repo, outcome.bundle)
        if gitops.has_commit(self.repo, trial.commit):
            gitops.set_ref(self.repo, gitops.trial_ref(trial.id), trial.commit)
            status, reason = self._recheck_scope(trial.parent, trial.commit, status, reason)
        elif status != "lost":
            status, reason = "lost", "its commit never reached the coordinator"
        self._write_log(trial.id, outcome.log)
        self._record({"event": "trial_finished", "trial": trial.id, "status": status,
                      "metric": outcome.metric if status == "ok" else None,
                      "metrics": outcome.metrics, "seconds": round(outcome.seconds, 3),
                      "reported_hardware": outcome.hardware, "reason": reason})
        self._settle()

    def proposal_failed(self, worker_id: str, reason: str, cost_usd: float = 0.0) -> None:
        self._record({"event": "proposal_failed", "worker": worker_id, "reason": reason,
                      "cost_usd": cost_usd})

    def worker_lost(self, worker_id: str, reason: str) -> None:
        """The driver saw a worker die: its trial in flight is lost, owed re-runs are requeued."""
        self.live.pop(worker_id, None)
        for trial_id in self.state.inflight_of(worker_id):
            self._finish_lost(trial_id, reason)
        self._settle()

    def request_stop(self) -> None:
        self.stop_requested = True

    # -- decisions ------------------------------------------------------------------------

    def stop_reason(self) -> str | None:
        """Why no new work at all starts (None while the run goes on)."""
        return decide.stop_reason(self.state, self.config.stop, self.config.target.metric.direction,
                                  time.time() - self.session_start, self.stop_requested)

    def _budget_spent(self) -> str | None:
        return decide.budget_spent(self.state, self.config.stop)

    def _settle(self) -> None:
        """Makes every verdict the recorded results allow, one at a time (each may move best)."""
        while (judgement := decide.next_judgement(self.state, self.config.acceptance,
                                                   self.config.target.metric.direction)):
            self._carry_out(judgement)
        self._write_results()

    def _carry_out(self, j: decide.Judgement) -> None:
        numbers = {"reference": j.reference, "required": j.required,
                   "improvement": j.improvement, "runs": j.runs}
        event = {"event": "verdict", "trial": j.trial, "verdict": j.verdict, **numbers}
        if j.reason:
            event["reason"] = j.reason
        if j.verdict == "accept":
            event |= {"verdict": "accepted", "best_commit": self._best_commit_for(j)}
        elif j.verdict == "rebase":
            event |= self._rebase(j.trial)
        self._record(event)
        if event["verdict"] == "accepted":
            self._sync_refs()

    def _best_commit_for(self, j: decide.Judgement) -> str:
        trial = self.state.trials[j.trial]
        confirmations = [r.metric for r in self.state.confirmations(trial.id) if r.status == "ok"]
        # a volunteer's own metric is a claim, not a measurement: its trusted re-runs stand
        runs = confirmations if trial.volunteer and confirmations else [trial.metric] + confirmations
        trailers = (f"Swarm-Trial: {trial.id}\nSwarm-Worker: {trial.worker}\n"
                    f"Swarm-Metric: {self.config.target.metric.name}={mean(runs):.6g}\n"
                    f"Swarm-Runs: {len(runs)}")
        message = f"{trial.hypothesis or 'an unnamed change'}\n\n{trailers}"
        return gitops.commit_tree(self.repo, trial.tree, self.state.best.commit, message)

    def _rebase(self, trial_id: str) -> dict[str, Any]:
        trial, best = self.state.trials[trial_id], self.state.best
        tree = gitops.cherry_pick(self._merge_worktree, trial.commit, best.commit)
        if tree is None:
            return {"verdict": "stale_conflict", "reason": f"conflicts with best {best.commit[:7]}"}
        if tree == best.tree:
            return {"verdict": "discard", "reason": "its change is already in best"}
        message = f"{trial.hypothesis}\n\nSwarm-Rebased-From: {trial.id}"
        commit = gitops.commit_tree(self.repo, tree, best.commit, message)
        gitops.set_ref(self.repo, f"refs/swarm/rebased/{trial.id}", commit)
        return {"verdict": "rebased", "commit": commit, "tree": tree, "parent": best.commit}

    # -- plumbing -------------------------------------------------------------------------

    def _start_trial(self, worker_id: str, choice: decide.Assignment) -> str:
        trial_id = self.state.next_trial_id()
        hardware, volunteer = self._seat(worker_id)
        self._record({"event": "trial_started", "trial": trial_id, "kind": choice.kind,
                      "worker": worker_id, "commit": choice.commit, "tree": choice.tree,
                      "parent": choice.parent, "of": choice.of, "hypothesis": choice.hypothesis,
                      "session": self.session, "hardware": hardware,
                      "node": self._node_of(worker_id),
                      # a rebased winner re-run by a volunteer needs a trusted confirmation
                      "volunteer": volunteer and choice.kind == "candidate"})
        return trial_id

    def _seat(self, worker_id: str) -> tuple[str, bool]:
        """The worker's class of hardware (a volunteer's is its own) and whether it volunteers."""
        placed = self.placement.get(worker_id, {})
        hardware = placed.get("hardware") or self.live.get(worker_id, {}).get("hardware", "")
        unplaced = self.driver_places and worker_id not in self.placement
        volunteer = bool(placed.get("volunteer")) or unplaced
        return (VOLUNTEER_CLASS + hardware if volunteer else hardware), volunteer

    def _node_of(self, worker_id: str) -> str:
        """Where the worker runs, for the report's colours: the driver's node id, else its host."""
        return str(self.placement.get(worker_id, {}).get("node")
                   or self.live.get(worker_id, {}).get("host", ""))

    def _volunteers(self) -> frozenset[str]:
        return frozenset(w for w, placed in self.placement.items() if placed.get("volunteer"))

    def _finish_lost(self, trial_id: str, reason: str) -> None:
        self._record({"event": "trial_finished", "trial": trial_id, "status": "lost",
                      "reason": reason})

    def _recheck_scope(self, parent: str, commit: str, status: str, reason: str) -> tuple[str, str]:
        # The worker checked already; the coordinator does not take its word for it.
        changed = gitops.changed_paths(self.repo, parent, commit)
        violation = scope_violation(changed, self.config.target.editable, self.config.target.readonly)
        return ("out_of_scope", violation) if violation else (status, reason)

    def _bundle(self, commit: str, have: str | None) -> bytes | None:
        return gitops.make_bundle(self.repo, commit, [have] if have else [])

    def _record(self, event: dict[str, Any]) -> None:
        self.state.apply(self.ledger.append(event))
        if event["event"] in ("trial_finished", "verdict", "proposal_failed"):
            log.info(" ".join(f"{k}={v}" for k, v in event.items() if k not in ("metrics", "event")
                              and v not in (None, "", {})))

    def _write_log(self, trial_id: str, text: str) -> None:
        logs = self.run_dir / "logs"
        logs.mkdir(exist_ok=True)
        (logs / f"{trial_id}.log").write_text(text)

    def _write_results(self) -> None:
        self.results.write(self.state)

    # -- what the driver shows ------------------------------------------------------------

    def place(self, worker_id: str, where: dict[str, Any]) -> None:
        """The driver says where it is about to start a worker, before the worker can ask for
        work: until then the coordinator would not know whether it is a volunteer."""
        self.driver_places = True
        self.placement[worker_id] = where
        self.driver_seen = time.monotonic()

    def set_live(self, workers: list[str] | dict[str, dict[str, Any]]) -> None:
        """The driver's running workers, with where it placed each (a restarted coordinator
        forgot its own)."""
        placement = workers if isinstance(workers, dict) else {w: {} for w in workers}
        self.driver_places = True
        self.placement = {w: p for w, p in placement.items() if w not in self.stopped}
        self.live = {w: self.live.get(w, {}) for w in self.placement}
        self.driver_seen = time.monotonic()

    def driver_silence_s(self) -> float:
        """Seconds since the driver last said which workers run: a driver killed outright
        leaves its (detached) coordinator behind, and a new driver may take the run over."""
        return time.monotonic() - self.driver_seen

    def status(self) -> dict[str, Any]:
        from coordinator.status import summarize
        reason = self.stop_reason() or self._budget_spent()
        where = {w: {**self.live.get(w, {}), **self.placement.get(w, {})} for w in self.live}
        status = summarize(self.state, self.config, where, self.session_start, reason)
        handled = sorted(self.report_seconds)
        status["report_ms"] = {"median": 1000 * handled[len(handled) // 2],
                               "p90": 1000 * handled[int(len(handled) * 0.9)],
                               "count": len(handled)} if handled else None
        return status



def _clear_stale_git_locks(git_dir: Path) -> None:
    """Removes *.lock files a crashed git left behind (they make every later git call fail).

    We hold the run-dir lock, so no other coordinator runs git here; a lock younger than a
    few seconds may still belong to a git child of a coordinator Ray just killed, so wait
    until it is old enough to be sure.
    """
    if not git_dir.is_dir():
        return
    for lock in git_dir.rglob("*.lock"):
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            continue
        if age < _STALE_LOCK_S:
            time.sleep(_STALE_LOCK_S - age)
        lock.unlink(missing_ok=True)
