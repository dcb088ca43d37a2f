"""The run directory one coordinator holds: its lock, the ledger, logs/, results.tsv, and how a
run is created or resumed there.

Layout: repo/ (the pool), ledger.jsonl, results.tsv, logs/<trial>.log, swarm.log, and the
scratch worktree .merge/. Every state change is a ledger event, written (fsync'd) before it is
applied and before the caller hears back.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import git
from pydantic import ValidationError

from coordinator.pool import Pool
from coordinator.results import ResultsFile
from coordinator.state import RunInfo, SwarmState
from coordinator.status import replay_ledger
from swarm.core.config import MetricSpec, SwarmConfig
from swarm.core.errors import ConfigError, RunDirError
from swarm.core.events import Judged, LedgerEvent, ProposalFailed, RunStarted, SessionStarted, TrialFinished
from swarm.core.preflight import tree_problems
from swarm.core.ledger import Ledger, TornTail, torn_tail

__all__ = ["RunDirectory", "OpenedRun", "open_run", "changed_target_key", "torn_warning", "torn_report"]

_INCOMING = ".repo-incoming"  # where a new run's target is imported before it is moved into place
# proposer.context files beyond this many characters are cut: the text goes in every prompt.
BRIEFING_CHARS = 100_000
_STALE_LOCK_S = 5.0  # a git lock this old has no live git process behind it
# What a resumed run may not change: the trials recorded so far would no longer compare.
_FIXED_TARGET_KEYS = ("editable", "readonly", "run", "metric")

log = logging.getLogger(__name__)


class RunDirectory:
    """A run directory, locked by this process while it lives: two coordinators appending to
    one ledger would corrupt the run. The lock dies with its process, so a crashed coordinator
    never blocks its own resume."""

    def __init__(self, path: Path, metric_name: str, other_metrics: tuple[str, ...] = ()) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self._lock = open(path / ".coordinator.lock", "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.seek(0)
            holder = self._lock.read().strip() or "another process"
            self._lock.close()
            raise RunDirError(f"{path} is in use by the coordinator of {holder}; "
                              "stop that run first") from None
        self._lock.truncate(0)
        self._lock.write(f"pid {os.getpid()}\n")
        self._lock.flush()
        self.ledger_path = path / "ledger.jsonl"
        self.repo_dir = path / "repo"
        self.results = ResultsFile(path / "results.tsv", metric_name, other_metrics)
        self._ledger: Ledger | None = None
        self._changed: set[str] | None = None  # trials whose results line may differ (None: any)

    def read_ledger(self) -> tuple[list[LedgerEvent], SwarmState, TornTail | None]:
        """The events recorded so far, the state they replay to, and the line a crash tore off
        the end. Every line is read before anything is written: a bad one refuses the run
        with its line number, and the ledger is left as it is. Only then is it opened for
        appending, which drops the torn line (it was never acknowledged)."""
        events, state = replay_ledger(self.ledger_path)
        torn = torn_tail(self.ledger_path)
        if self.ledger_path.exists():
            self._ledger = Ledger(self.ledger_path)
        return events, state, torn

    def create_ledger(self, first: RunStarted) -> RunStarted:
        self._ledger, stamped = Ledger.create(self.ledger_path, first)
        return stamped

    def record(self, event: LedgerEvent) -> LedgerEvent:
        """Appends the event durably; returns it as written (with its timestamp)."""
        assert self._ledger is not None, "the ledger is opened or created first"
        stamped = self._ledger.append(event)
        if self._changed is not None and isinstance(stamped, TrialFinished | Judged):
            self._changed.add(stamped.trial)
        if isinstance(stamped, TrialFinished | Judged | ProposalFailed):
            shown = stamped.model_dump(exclude={"ts", "event", "metrics"}, exclude_none=True)
            log.info(" ".join(f"{k}={v}" for k, v in shown.items() if v not in ("", {})))
        return stamped

    def one_sync(self) -> AbstractContextManager[None]:
        """Events recorded inside are durable together when the block ends (Ledger.one_sync)."""
        assert self._ledger is not None, "the ledger is opened or created first"
        return self._ledger.one_sync()

    def write_log(self, trial_id: str, text: str) -> None:
        logs = self.path / "logs"
        logs.mkdir(exist_ok=True)
        (logs / f"{trial_id}.log").write_text(text)

    def write_results(self, state: SwarmState) -> None:
        self.results.write(state, self._changed)
        self._changed = set()

    def close(self) -> None:
        """Releases the run directory (a process that exits releases it too)."""
        if self._ledger is not None:
            self._ledger.close()
        self._lock.close()


@dataclass
class OpenedRun:
    directory: RunDirectory
    pool: Pool
    state: SwarmState
    restarted: bool  # this session opened the run before: Ray restarted its coordinator
    # trials whose report was torn off the ledger's end, with what to record of them
    torn_reports: dict[str, str] = field(default_factory=dict)


def open_run(path: Path, config: SwarmConfig, session: str, resume: bool) -> OpenedRun:
    """Opens the run in `path`, or creates it. A refused or failed open changes nothing on disk,
    except the scratch clone of a run being created (so the next try starts clean)."""
    directory = RunDirectory(path, config.target.metric.name, config.target.other_metrics())
    with releasing_on_error(directory):
        _clear_stale_git_locks(directory.repo_dir / ".git")
        events, state, torn = directory.read_ledger()
        restarted = any(isinstance(e, SessionStarted) and e.session == session for e in events)
        if events and not (resume or restarted):
            raise RunDirError(f"{path} already holds a run; pass --resume to continue it "
                              "or --run-dir to start another")
        if not events and resume:
            raise RunDirError(f"{path}: no ledger.jsonl to resume from")
        if events:
            assert state.run_info is not None
            if key := changed_target_key(state.run_info, config):
                raise RunDirError(f"{path}: target.{key} was {_recorded(state.run_info, key)!r} "
                                  f"when the run started, now {_given(config, key)!r}; start a "
                                  "new run to change it")
            pool = Pool(directory.repo_dir)
        else:
            pool = _create_run(directory, config, state)
        reported = torn_report(torn, state, session)
        if torn:
            log.warning(torn_warning(directory.ledger_path, torn, lost=reported is not None))
        return OpenedRun(directory, pool, state, restarted, _torn_reports(directory, reported))
    raise AssertionError("unreachable")  # pragma: no cover  (releasing_on_error re-raises)


@contextmanager
def releasing_on_error(directory: RunDirectory) -> Iterator[None]:
    """On any failure: the run directory is released and a git failure said in one line."""
    try:
        yield
    except BaseException as exc:
        directory.close()
        shutil.rmtree(directory.path / _INCOMING, ignore_errors=True)
        if isinstance(exc, git.GitCommandError):
            raise RunDirError(f"{directory.path}: git failed while opening the run: "
                              f"{' '.join(str(exc).split())[:300]}") from None
        raise


def torn_warning(ledger: Path, torn: TornTail, lost: bool) -> str:
    """What opening a run says of the line a crash tore off its ledger, and what follows.
    `lost`: the torn line reported a trial that is now recorded lost (its session is over)."""
    text = (f"{ledger}:{torn.line}: the last line is torn ({torn.what()}): the run stopped "
            "mid-write; it was never acknowledged and is dropped")
    if lost and torn.trial:
        text += (f"; trial {torn.trial} reported, but its result was not recorded: it is "
                 f"recorded lost, {_log_kept(ledger.parent, torn.trial, ledger.parent)}")
    elif torn.trial and torn.kind == "trial_started":
        text += f"; trial {torn.trial} never reached its worker"
    elif torn.trial and torn.kind == "verdict":
        text += f"; the verdict on trial {torn.trial} is made again"
    return text


def torn_report(torn: TornTail | None, state: SwarmState, session: str) -> str | None:
    """The trial whose report a torn last line held, if opening the run records it lost: in
    flight, of an earlier session (in its own session, its worker reports it again)."""
    if not (torn and torn.kind == "trial_finished" and torn.trial in state.inflight):
        return None
    return torn.trial if state.trials[torn.trial].session != session else None


def _torn_reports(directory: RunDirectory, trial: str | None) -> dict[str, str]:
    # The coordinator writes a trial's log and keeps its commit before it records the result,
    # so a report torn off the ledger left both: the trial did report, and its log says how.
    if trial is None:
        return {}
    kept = _log_kept(directory.path, trial, Path())
    return {trial: f"it reported, but the run stopped before its result was recorded; {kept}"}


def _log_kept(run_dir: Path, trial: str, shown_under: Path) -> str:
    log_file = Path("logs") / f"{trial}.log"
    if (run_dir / log_file).exists():
        return f"its log kept in {shown_under / log_file}"
    return "its log was not written"


def changed_target_key(recorded: RunInfo, config: SwarmConfig) -> str | None:
    """The first target key a resumed run's config changed, of those a run may not change."""
    for key in _FIXED_TARGET_KEYS:
        if _recorded(recorded, key) != _given(config, key):
            return key
    return None


def _recorded(info: RunInfo, key: str) -> object:
    value = info.config.get("target", {}).get(key)
    if key == "metric" and isinstance(value, dict):  # keys added since take their defaults
        try:
            return MetricSpec.model_validate(value).model_dump(mode="json")
        except ValidationError:
            return value
    return value


def _given(config: SwarmConfig, key: str) -> object:
    return config.target.model_dump(mode="json")[key]


def _create_run(directory: RunDirectory, config: SwarmConfig, state: SwarmState) -> Pool:
    """All or nothing: the target is imported into a scratch folder, moved into place, and
    only then is the ledger created, atomically, with its first event."""
    incoming = directory.path / _INCOMING
    if directory.repo_dir.exists() or directory.ledger_path.exists():
        raise RunDirError(f"{directory.path} holds a repo/ or an empty ledger.jsonl but no run; "
                          "move them away or choose another --run-dir")
    shutil.rmtree(incoming, ignore_errors=True)
    Pool.import_target(config.target.repo, incoming)
    source = config.target.repo
    # A git URL's files are first seen here (`swarm run` checked a directory's before Ray started).
    if not Path(source).is_dir() and (problems := tree_problems(config, incoming, shown_as=source)):
        raise ConfigError("\n".join(p.line("the cloned target") for p in problems))
    incoming.rename(directory.repo_dir)
    pool = Pool(directory.repo_dir)
    commit, tree = pool.head()
    first = RunStarted(commit=commit, tree=tree,
                       readonly_hashes=pool.readonly_hashes(config.target.readonly),
                       config=config.model_dump(mode="json"), briefing=read_briefing(config))
    state.apply(directory.create_ledger(first))
    return pool


def read_briefing(config: SwarmConfig) -> dict[str, str]:
    """proposer.context's files, read once when the run starts: the run (and every worker that
    joins it, on any node) keeps the text it started with."""
    texts = {}
    for path in config.proposer.context:
        try:
            texts[path] = Path(path).read_text(encoding="utf-8", errors="replace")[:BRIEFING_CHARS]
        except OSError as exc:
            raise ConfigError(f"proposer.context: cannot read {path} ({exc.strerror}); give a file "
                              "this machine has") from None
    return texts


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
