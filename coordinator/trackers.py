"""The trackers (MLflow, W&B) and the follower that feeds them from the ledger.

The follower is a thread in the coordinator's process: it tails ledger.jsonl, makes steps of
its events (`coordinator.tracking`) and logs them in batches. It never blocks the coordinator,
and a tracker error never stops the search: it is logged to swarm.log, the tracker is tried
again with backoff, and once it answers the backlog is caught up from the ledger, from the
last step the tracker itself says it holds. mlflow and wandb are imported here, lazily, only
when a run tracks with them (`pip install 'autoresearch-swarm[mlflow]'`, `[wandb]`).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from coordinator.tracking import (
    CURSOR_METRIC, StepMaker, TrackedChange, TrackedStep, flat_params, run_key,
)
from swarm.core.config import SwarmConfig, TrackingSpec
from swarm.core.events import RunStarted, parse_event
from swarm.core.ledger import read_events

__all__ = ["Tracker", "MlflowTracker", "WandbTracker", "Follower", "make_tracker", "start_follower",
           "upload_report", "default_uri", "how_to_look"]

log = logging.getLogger("coordinator.tracking")

STEPS_PER_CALL = 80  # MLflow's log_batch takes at most 1000 metrics; a step has about a dozen
POLL_S = 1.0  # how often the follower reads the ledger's new lines
BACKOFF_MAX_S = 60.0
# the last flush at the session's end (the driver waits 10 s for it); the rest is caught up on resume
CLOSE_WAIT_S = 7.0


class Tracker(Protocol):
    def open(self, first: RunStarted) -> int:
        """Finds (or creates) the run's tracker run; returns the last step it holds (0: none)."""
        ...

    def log(self, steps: Sequence[TrackedStep], changes: Sequence[tuple[TrackedChange, str]]) -> None: ...

    def upload(self, paths: Sequence[Path]) -> None: ...

    def finish(self) -> None: ...


def default_uri(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"


def how_to_look(spec: TrackingSpec, run_dir: Path) -> str:
    """The command that shows the run's tracker run."""
    if spec.kind == "mlflow":
        uri = spec.uri or default_uri(run_dir)
        if uri.startswith(("http://", "https://", "databricks")):
            return f"MLflow: {uri}"
        return f"mlflow ui --backend-store-uri {uri}"
    if spec.kind == "wandb" and spec.mode == "offline":
        return f"wandb sync {run_dir.resolve() / 'wandb'}/offline-run-*"
    return "W&B: the project's page on wandb.ai"


class MlflowTracker:
    """One MLflow run per swarm run, tagged swarm.run_id (found again on resume). Metrics by
    step; each step's strings (status, worker, hardware) in trials/from-<step>.jsonl, one
    artifact per log_batch; each accepted change's diff as changes/<trial>.diff."""

    def __init__(self, spec: TrackingSpec, run_dir: Path, name: str) -> None:
        self.uri = spec.uri or default_uri(run_dir)
        self.experiment = spec.experiment or name
        self.run_dir = run_dir
        self.run_id = ""
        self.metric_name = "metric"
        self._client: Any = None

    def open(self, first: RunStarted) -> int:
        # the follower retries on its own: one try of each HTTP call, not MLflow's minutes of them
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        experiment = client.get_experiment_by_name(self.experiment)
        if experiment is None:
            local = not self.uri.startswith(("http://", "https://", "databricks"))
            where = (self.run_dir / "mlartifacts").resolve().as_uri() if local else None
            experiment_id = client.create_experiment(self.experiment, artifact_location=where)
        else:
            experiment_id = experiment.experiment_id
        key = run_key(first)
        found = client.search_runs([experiment_id], filter_string=f"tags.`swarm.run_id` = '{key}'",
                                   max_results=1)
        if found:
            self.run_id = found[0].info.run_id
            client.update_run(self.run_id, status="RUNNING")
        else:
            tags = {"swarm.run_id": key, "swarm.run_dir": str(self.run_dir.resolve())}
            self.run_id = client.create_run(experiment_id, tags=tags,
                                            run_name=str(first.config.get("name", key))).info.run_id
        params = [Param(k, v) for k, v in flat_params(first.config).items()]
        for start in range(0, len(params), 100):  # the same values again on resume: allowed
            client.log_batch(self.run_id, params=params[start:start + 100])
        self.metric_name = str(first.config.get("target", {}).get("metric", {}).get("name", "metric"))
        self._client = client
        history = client.get_metric_history(self.run_id, CURSOR_METRIC)
        return max((m.step for m in history), default=0)

    def log(self, steps: Sequence[TrackedStep], changes: Sequence[tuple[TrackedChange, str]]) -> None:
        from mlflow.entities import Metric

        for change, diff in changes:  # named by trial: logging one again overwrites it
            self._client.log_text(self.run_id, diff, f"changes/{change.trial}.diff")
        for start in range(0, len(steps), STEPS_PER_CALL):
            chunk = steps[start:start + STEPS_PER_CALL]
            rows = "".join(json.dumps(s.row()) + "\n" for s in chunk)
            # named by its first step: a chunk logged again after a failure replaces its table
            self._client.log_text(self.run_id, rows, f"trials/from-{chunk[0].step:06d}.jsonl")
            metrics = [Metric(name, value, int(s.ts * 1000), s.step)
                       for s in chunk for name, value in s.numbers(self.metric_name).items()]
            self._client.log_batch(self.run_id, metrics=metrics)  # one transaction: the cursor moves whole

    def upload(self, paths: Sequence[Path]) -> None:
        for path in paths:
            self._client.log_artifact(self.run_id, str(path), "report")

    def finish(self) -> None:
        if self._client is not None and self.run_id:
            self._client.set_terminated(self.run_id, "FINISHED")


class WandbTracker:
    """One W&B run per swarm run, its id derived from the ledger (resume="allow" finds it
    again). Offline by default, under RUN_DIR/wandb/. The last step flushed is kept in
    RUN_DIR/tracking/wandb.cursor, written after each batch."""

    def __init__(self, spec: TrackingSpec, run_dir: Path, name: str) -> None:
        self.spec, self.run_dir, self.project = spec, run_dir, spec.experiment or name
        self.files = run_dir / "tracking"
        self.cursor = self.files / "wandb.cursor"
        self.metric_name = "metric"
        self._run: Any = None

    def open(self, first: RunStarted) -> int:
        import wandb

        self.files.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(silent=True, console="off", x_disable_stats=True, save_code=False)
        self._run = wandb.init(project=self.project, entity=self.spec.entity, id=f"swarm-{run_key(first)}",
                               name=str(first.config.get("name", "")) or None, resume="allow",
                               mode=self.spec.mode, dir=str(self.run_dir), config=first.config,
                               settings=settings, reinit="create_new")
        self.metric_name = str(first.config.get("target", {}).get("metric", {}).get("name", "metric"))
        try:
            return int(self.cursor.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def log(self, steps: Sequence[TrackedStep], changes: Sequence[tuple[TrackedChange, str]]) -> None:
        for change, diff in changes:
            path = self.files / "changes" / f"{change.trial}.diff"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(diff)
            self._run.save(str(path), base_path=str(self.files), policy="now")
        for step in steps:
            row = {k: v for k, v in step.row().items() if k not in ("step", "metric", "best_so_far") and v is not None}
            self._run.log({**step.numbers(self.metric_name), **row}, step=step.step)
        if steps:
            scratch = self.cursor.with_suffix(".tmp")
            scratch.write_text(f"{steps[-1].step}\n")
            scratch.replace(self.cursor)

    def upload(self, paths: Sequence[Path]) -> None:
        for path in paths:
            self._run.save(str(path), base_path=str(path.parent), policy="now")

    def finish(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None


def make_tracker(spec: TrackingSpec, run_dir: Path, name: str) -> Tracker:
    if spec.kind == "mlflow":
        return MlflowTracker(spec, run_dir, name)
    if spec.kind == "wandb":
        return WandbTracker(spec, run_dir, name)
    raise ValueError(f"tracking.kind {spec.kind!r}: expected mlflow or wandb")


def git_diff(repo: Path, parent: str, commit: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), "diff", "--no-color", parent, commit],
                          capture_output=True, text=True, errors="replace")
    return done.stdout if done.returncode == 0 else f"(git diff {parent[:7]} {commit[:7]} failed)\n"


class Follower:
    """Tails the ledger into a tracker, in its own thread; see the module's docstring."""

    def __init__(self, make: Callable[[], Tracker], ledger: Path, repo: Path, poll_s: float = POLL_S) -> None:
        self.make, self.ledger, self.repo, self.poll_s = make, ledger, repo, poll_s
        self.logged = 0  # the last step the tracker holds, as far as this follower knows
        self.failures = 0
        self.cpu_s = 0.0  # the thread's own CPU time in catching up (what the coordinator's process pays)
        self.connect_cpu_s = 0.0  # of which in connecting (finding or creating the tracker run)
        self._tracker: Tracker | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="swarm-tracking", daemon=True)
        self._reset()

    def start(self) -> Follower:
        self._thread.start()
        return self

    def close(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """Stops the thread after one last catch-up, and finishes the tracker's run."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(wait_s)

    def _reset(self) -> None:
        self._maker, self._offset, self._tail = StepMaker(), 0, b""

    def _loop(self) -> None:
        backoff = 1.0
        while True:
            stopping = self._stop.is_set()
            started = time.thread_time()
            try:
                self.catch_up()
                backoff = 1.0
            except Exception as exc:  # whatever the tracker raises: the search goes on
                self.cpu_s += time.thread_time() - started
                self.failures += 1
                log.warning("tracking: %s: %s; tried again in %.0f s, then caught up from the ledger",
                            type(exc).__name__, " ".join(str(exc).split())[:300], backoff)
                self._drop()
                if stopping:
                    return
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            self.cpu_s += time.thread_time() - started
            if stopping:
                self._finish()
                return
            self._stop.wait(self.poll_s)

    def catch_up(self) -> None:
        """Logs what the ledger holds beyond what the tracker holds (connecting first if need be)."""
        if self._tracker is None:
            self._connect()
        assert self._tracker is not None
        steps: list[TrackedStep] = []
        changes: list[tuple[TrackedChange, str]] = []
        for event in self._new_events():
            for item in self._maker.feed(event):
                if isinstance(item, TrackedStep) and item.step > self.logged:
                    steps.append(item)
                elif isinstance(item, TrackedChange) and item.step >= self.logged:
                    changes.append((item, git_diff(self.repo, item.parent, item.commit)))
        if steps or changes:
            self._tracker.log(steps, changes)
            self.logged = max(self.logged, steps[-1].step if steps else 0)

    def upload(self, paths: Sequence[Path]) -> None:
        assert self._tracker is not None, "catch_up connects first"
        self._tracker.upload(paths)

    def finish(self) -> None:
        """Finishes the tracker's run (a follower used without its thread)."""
        self._finish()

    def _connect(self) -> None:
        self._reset()
        started = time.thread_time()
        first = next(iter(read_events(self.ledger)), None)
        if not isinstance(first, RunStarted):
            raise RuntimeError(f"{self.ledger} has no run_started event yet")
        tracker = self.make()
        self.logged = tracker.open(first)
        self._tracker = tracker
        self.connect_cpu_s += time.thread_time() - started
        log.info("tracking: connected; the tracker holds %d steps, the rest come from the ledger", self.logged)

    def _new_events(self) -> list[Any]:
        with open(self.ledger, "rb") as file:
            file.seek(self._offset)
            data = file.read()
        self._offset += len(data)
        data, cut = self._tail + data, (self._tail + data).rfind(b"\n") + 1
        self._tail = data[cut:]  # a line being appended: read once it is whole
        return [parse_event(line) for line in data[:cut].splitlines() if line.strip()]

    def _drop(self) -> None:
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            try:
                tracker.finish()
            except Exception:  # it is down already: the next connect finds its run again
                pass

    def _finish(self) -> None:
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            try:
                tracker.finish()
            except Exception as exc:
                log.warning("tracking: finishing the run failed (%s); the next resume catches up", exc)


def start_follower(config: SwarmConfig, run_dir: Path, poll_s: float = POLL_S) -> Follower:
    spec = config.tracking
    follower = Follower(lambda: make_tracker(spec, run_dir, config.name), run_dir / "ledger.jsonl",
                        run_dir / "repo", poll_s)
    log.info("tracking with %s: %s", spec.kind, how_to_look(spec, run_dir))
    return follower.start()


def upload_report(config: SwarmConfig, run_dir: Path, paths: Sequence[Path]) -> None:
    """Once the session has ended: what the ledger holds beyond what the tracker holds is
    logged (the coordinator's last flush may have been cut short), then the report's files are
    added to the run's tracker run. A failure is logged, never raised: the next resume catches up."""
    if config.tracking.kind is None:
        return
    spec = config.tracking
    follower = Follower(lambda: make_tracker(spec, run_dir, config.name), run_dir / "ledger.jsonl",
                        run_dir / "repo")
    try:
        follower.catch_up()
        follower.upload([p for p in paths if p.exists()])
    except Exception as exc:
        log.warning("tracking: the report was not uploaded (%s: %s)", type(exc).__name__,
                    " ".join(str(exc).split())[:300])
    finally:
        follower.finish()
