"""The driver: config -> coordinator -> workers -> wait. The only swarm/ module that imports ray."""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError, RayError

from coordinator.actor import CoordinatorActor
from swarm.config import SwarmConfig
from swarm.errors import ConfigError, SwarmError
from workers.actor import WorkerActor

__all__ = [
    "RunOptions", "CoordinatorLost", "run_swarm", "resolve_target_repo", "coordinator_name",
    "connect",
]

log = logging.getLogger("swarm.driver")


class CoordinatorLost(SwarmError):
    """The coordinator died for good; the run directory holds everything it had recorded."""

    def __init__(self, why: str = "the coordinator died") -> None:
        super().__init__(f"{why}; nothing it recorded is lost: continue with "
                         "`swarm run CONFIG --resume`")


@dataclass
class RunOptions:
    config: SwarmConfig
    run_dir: Path
    resume: bool = False
    address: str | None = None  # None: start a local Ray instance (unless one is connected)
    poll_s: float = 0.5
    on_status: Callable[[dict[str, Any]], None] | None = None  # live progress display
    max_replacements: int | None = None  # default: 2 per configured worker


def run_swarm(options: RunOptions) -> dict[str, Any]:
    """Runs until a stopping rule holds (or Ctrl-C twice); returns the final status."""
    config, run_dir = options.config, options.run_dir.resolve()
    connect(options.address, config)
    session = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    coordinator = _start_coordinator(config, run_dir, session, options.resume)
    pool = _WorkerPool(config, coordinator, f"{config.name}-{session}")
    log.info("session %s: %d workers, run dir %s", session, config.workers.count, run_dir)
    try:
        return _supervise(options, coordinator, pool)
    finally:
        pool.kill_all()
        ray.kill(coordinator, no_restart=True)


def resolve_target_repo(config: SwarmConfig, config_path: Path) -> SwarmConfig:
    """A relative target.repo is looked up in the current directory, then beside the config."""
    repo = config.target.repo
    if "://" in repo or repo.startswith("git@") or Path(repo).is_absolute():
        return config
    for base in (Path.cwd(), config_path.resolve().parent):
        if (base / repo).exists():
            return config.with_overrides({"target.repo": str((base / repo).resolve())})
    raise ConfigError(f"{config_path}: target.repo '{repo}' is neither in {Path.cwd()} nor in "
                      f"{config_path.resolve().parent}; give a directory or a git URL")


# -- connecting and starting ------------------------------------------------------------------

def connect(address: str | None, config: SwarmConfig) -> None:
    """Joins `address`, or starts a local Ray instance sized for the workers; no-op if connected."""
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, namespace="swarm", log_to_driver=False)
        return
    # A local instance gets enough logical CPUs for the workers asked for: a GPU-bound or
    # waiting experiment leaves the cores idle, and `--workers 8` on a laptop means 8.
    cpus = max(os.cpu_count() or 1, int(config.workers.count * config.workers.cpus_per_worker) + 1)
    ray.init(address="local", namespace="swarm", num_cpus=cpus, include_dashboard=False,
             log_to_driver=False)


def coordinator_name(run_dir: Path) -> str:
    """One coordinator per run directory in a cluster: its actor name is derived from the path."""
    return "swarm-coordinator-" + hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:12]


def _start_coordinator(config: SwarmConfig, run_dir: Path, session: str, resume: bool) -> Any:
    name = coordinator_name(run_dir)
    try:
        ray.get_actor(name)
        raise SwarmError(f"{run_dir} is already being run by another driver on this cluster")
    except ValueError:
        pass  # no such actor: good
    head = {"node:__internal_head__": 0.001}  # the run directory lives on the head node
    coordinator = CoordinatorActor.options(name=name, resources=head).remote(
        config, str(run_dir), session, resume)
    try:
        error = ray.get(coordinator.ready.remote(), timeout=300)  # a big clone may take a while
    except GetTimeoutError:
        error = "the coordinator did not open the run directory within 300 s"
    if error:
        ray.kill(coordinator, no_restart=True)
        raise SwarmError(error)
    return coordinator


class _WorkerPool:
    """The worker actors, each with its running `run()` call; dead ones are replaced."""

    def __init__(self, config: SwarmConfig, coordinator: Any, run_tag: str) -> None:
        self.config, self.coordinator, self.run_tag = config, coordinator, run_tag
        self.running: dict[Any, tuple[str, Any]] = {}  # run() ref -> (worker id, actor)
        self.started = 0
        for _ in range(config.workers.count):
            self.start()

    def start(self) -> None:
        worker_id = f"w{self.started}"
        seed = None if self.config.proposer.seed is None else self.config.proposer.seed + self.started
        actor = WorkerActor.options(
            num_cpus=self.config.workers.cpus_per_worker,
            num_gpus=self.config.workers.gpus_per_worker,
        ).remote(worker_id, self.config, self.coordinator, self.run_tag, seed)
        self.running[actor.run.remote()] = (worker_id, actor)
        self.started += 1

    def finished(self, timeout_s: float) -> list[tuple[str, BaseException | None]]:
        """Waits for run() calls to end: (worker id, the error that ended it or None)."""
        ready, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=timeout_s)
        ended = []
        for ref in ready:
            worker_id, _actor = self.running.pop(ref)
            try:
                ray.get(ref)
                ended.append((worker_id, None))
            except RayError as exc:
                ended.append((worker_id, exc))
        return ended

    def worker_ids(self) -> list[str]:
        return sorted(worker_id for worker_id, _actor in self.running.values())

    def kill_all(self) -> None:
        for _worker_id, actor in self.running.values():
            ray.kill(actor, no_restart=True)
        self.running.clear()


# -- supervising --------------------------------------------------------------------------

def _supervise(options: RunOptions, coordinator: Any, pool: _WorkerPool) -> dict[str, Any]:
    budget = options.max_replacements
    replacements_left = 2 * options.config.workers.count if budget is None else budget
    status: dict[str, Any] = {}
    stopping, last_error = False, ""
    while pool.running:
        try:
            for worker_id, error in pool.finished(options.poll_s):
                if error is None:
                    continue
                last_error = _worker_failed(coordinator, worker_id, error)
                if not stopping and replacements_left > 0 and not status.get("stop_reason"):
                    replacements_left -= 1
                    pool.start()
            # Said again on every poll: a coordinator restarted by Ray forgets both.
            _tell(coordinator.set_live, pool.worker_ids())
            if stopping:
                _tell(coordinator.request_stop)
            status = _poll_status(coordinator, status)
            if options.on_status:
                options.on_status(status)
        except KeyboardInterrupt:
            if stopping:
                log.info("second Ctrl-C: abandoning %d trials in flight", len(pool.running))
                _abandon(coordinator, pool)
                break
            stopping = True
            log.info("Ctrl-C: no new work; waiting for trials in flight")
            if options.on_status:
                options.on_status({**status, "stop_reason": "Ctrl-C: finishing trials in flight "
                                   "(Ctrl-C again to abandon them)"})
    final = _poll_status(coordinator, status)
    if not final.get("stop_reason") and not stopping:
        raise SwarmError(f"every worker died and the replacements ran out; the last error: "
                         f"{last_error}; see swarm.log")
    return final


def _worker_failed(coordinator: Any, worker_id: str, error: BaseException) -> str:
    reason = _one_line(error)
    log.warning("worker %s ended: %s", worker_id, reason)
    if _coordinator_gone(error):
        raise CoordinatorLost()
    _call(coordinator.worker_lost, worker_id, f"worker died: {reason}")
    return reason


def _abandon(coordinator: Any, pool: _WorkerPool) -> None:
    for worker_id, actor in list(pool.running.values()):
        ray.kill(actor, no_restart=True)
        _call(coordinator.worker_lost, worker_id, "abandoned at the second Ctrl-C")
    pool.running.clear()


def _poll_status(coordinator: Any, last: dict[str, Any]) -> dict[str, Any]:
    try:
        return ray.get(coordinator.status.remote(), timeout=30)
    except ActorDiedError:
        raise CoordinatorLost() from None
    except (RayActorError, GetTimeoutError):
        return last  # restarting: it rebuilds itself from the ledger


def _call(method: Any, *args: Any) -> Any:
    """A coordinator call that rides out a restart but never blocks forever."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return ray.get(method.remote(*args), timeout=30)
        except ActorDiedError:
            raise CoordinatorLost() from None
        except (RayActorError, GetTimeoutError):
            if time.monotonic() > deadline:
                raise CoordinatorLost("the coordinator has not answered for 120 s") from None
            time.sleep(0.5)


def _tell(method: Any, *args: Any) -> None:
    """A best-effort call, repeated on the next poll anyway: a slow coordinator is not an error."""
    try:
        ray.get(method.remote(*args), timeout=10)
    except ActorDiedError:
        raise CoordinatorLost() from None
    except (RayActorError, GetTimeoutError):
        pass


def _coordinator_gone(error: BaseException) -> bool:
    # A worker whose coordinator calls failed for good reports it through its own error.
    cause = getattr(error, "cause", None)
    return isinstance(cause, ActorDiedError) and "CoordinatorActor" in str(cause)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300]
