"""The driver: config -> coordinator -> workers -> wait. The only swarm/ module that imports ray."""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError, RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from coordinator.actor import CoordinatorActor
from swarm.core.config import SwarmConfig
from swarm.core.errors import ConfigError, SwarmError
from swarm.shell.placement import Node, node_from_ray, plan
from workers.actor import WorkerActor

__all__ = [
    "RunOptions", "CoordinatorLost", "run_swarm", "resolve_target_repo", "coordinator_name",
    "connect", "live_status",
]

log = logging.getLogger("swarm.driver")

NODE_POLL_S = 2.0  # how often the driver looks for nodes that joined (Ray has no push for it)
# A coordinator whose driver has been silent this long was left behind by a driver killed
# outright (it is detached); a new driver of the same run directory replaces it.
ORPHANED_AFTER_S = 30.0


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
    orphaned_after_s: float = ORPHANED_AFTER_S


def run_swarm(options: RunOptions) -> dict[str, Any]:
    """Runs until a stopping rule holds (or Ctrl-C twice); returns the final status."""
    config, run_dir = options.config, options.run_dir.resolve()
    connect(options.address, config)
    session = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    coordinator = _start_coordinator(config, run_dir, session, options.resume, options.orphaned_after_s)
    pool = _WorkerPool(config, coordinator, f"{config.name}-{session}")
    log.info("session %s: workers %s, run dir %s", session, config.workers.count, run_dir)
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
    count = config.workers.initial_count() or 0
    cpus = max(os.cpu_count() or 1, int(count * config.workers.cpus_per_worker + 0.999))
    ray.init(address="local", namespace="swarm", num_cpus=cpus, include_dashboard=False,
             log_to_driver=False)


def live_status(address: str, run_dir: Path) -> dict[str, Any]:
    """The status of a run from its live coordinator on the cluster at `address`."""
    ray.init(address=address, namespace="swarm", log_to_driver=False)
    try:
        coordinator = ray.get_actor(coordinator_name(run_dir))
    except ValueError:
        raise SwarmError(f"no live coordinator for {run_dir.resolve()} on {address}; give the run "
                         "directory exactly as the driver was given it, or read its ledger: "
                         "swarm status RUN_DIR on the head") from None
    try:
        return ray.get(coordinator.status.remote(), timeout=30)
    except (RayError, GetTimeoutError) as exc:
        raise SwarmError(f"the coordinator of {run_dir} did not answer: {_one_line(exc)}") from None


def coordinator_name(run_dir: Path) -> str:
    """One coordinator per run directory in a cluster: its actor name is derived from the path."""
    return "swarm-coordinator-" + hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:12]


def _start_coordinator(config: SwarmConfig, run_dir: Path, session: str, resume: bool,
                       orphaned_after_s: float) -> Any:
    name = coordinator_name(run_dir)
    _replace_orphan(name, run_dir, orphaned_after_s)
    head = {"node:__internal_head__": 0.001}  # the run directory lives on the head node
    # Detached: a `ray job submit` driver that dies does not take the run's state with it; a
    # driver started again takes over (see _replace_orphan) and the ledger has everything.
    coordinator = CoordinatorActor.options(name=name, lifetime="detached", resources=head).remote(
        config, str(run_dir), session, resume)
    try:
        error = ray.get(coordinator.ready.remote(), timeout=300)  # a big clone may take a while
    except GetTimeoutError:
        error = "the coordinator did not open the run directory within 300 s"
    if error:
        ray.kill(coordinator, no_restart=True)
        raise SwarmError(error)
    return coordinator


def _replace_orphan(name: str, run_dir: Path, orphaned_after_s: float) -> None:
    """Refuses a run directory another live driver runs; kills a coordinator left behind."""
    try:
        existing = ray.get_actor(name)
    except ValueError:
        return  # no such actor: good
    try:
        silence = ray.get(existing.driver_silence_s.remote(), timeout=30)
    except ActorDiedError:
        silence = float("inf")  # dead for good: nobody is running the run through it
    except (RayError, GetTimeoutError):
        # busy or restarting (replaying its ledger) is not orphaned: its driver may be alive
        raise SwarmError(f"the coordinator of {run_dir} is busy or restarting; try again in a "
                         "minute") from None
    if silence < orphaned_after_s:
        raise SwarmError(f"{run_dir} is already being run by another driver on this cluster")
    log.warning("replacing the coordinator of %s: its driver has been silent %.0f s", run_dir, silence)
    ray.kill(existing, no_restart=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the name is free once the kill has gone through
        try:
            ray.get_actor(name)
            time.sleep(0.2)
        except ValueError:
            return


@dataclass(frozen=True)
class _Worker:
    worker_id: str
    actor: Any
    node: Node


class _WorkerPool:
    """The worker actors, each with its running `run()` call, placed node by node; the pool is
    refilled from `plan` as nodes join and workers die."""

    def __init__(self, config: SwarmConfig, coordinator: Any, run_tag: str) -> None:
        self.config, self.coordinator, self.run_tag = config, coordinator, run_tag
        self.running: dict[Any, _Worker] = {}  # run() ref -> worker
        self.started = 0
        self.nodes: list[Node] = []
        self.looked_at = 0.0

    def fill(self, allowed: int | None) -> int:
        """Starts workers where the plan has room (at most `allowed`); how many it started."""
        self.looked_at = time.monotonic()
        self.nodes = [n for n in map(node_from_ray, ray.nodes()) if n is not None]
        running_on = Counter(w.node.node_id for w in self.running.values())
        by_id = {n.node_id: n for n in self.nodes}
        chosen = plan(self.nodes, self.config.workers, running_on, allowed)
        for node_id in chosen:
            self._start(by_id[node_id])
        return len(chosen)

    def node_alive(self, node_id: str) -> bool:
        return any(n.node_id == node_id for n in map(node_from_ray, ray.nodes()) if n is not None)

    def _start(self, node: Node) -> None:
        worker_id = f"w{self.started}"
        spec = self.config.workers
        seed = None if self.config.proposer.seed is None else self.config.proposer.seed + self.started
        # Placement first: a volunteer's worker must never be taken for a trusted one.
        ray.get(self.coordinator.place.remote(worker_id, self._where(node)))
        actor = WorkerActor.options(
            num_cpus=spec.cpus_per_worker, num_gpus=spec.gpus_per_worker,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False),
        ).remote(worker_id, self.config, self.coordinator, self.run_tag, seed, self._where(node))
        self.running[actor.run.remote()] = _Worker(worker_id, actor, node)
        self.started += 1
        log.info("worker %s started on node %s%s", worker_id, node.node_id[:8],
                 " (volunteer)" if node.volunteer else "")

    def _where(self, node: Node) -> dict[str, Any]:
        where: dict[str, Any] = {"node": node.node_id[:8], "volunteer": node.volunteer}
        if self.config.workers.gpus_per_worker > 0 and node.accelerator:
            where["hardware"] = f"gpu:{node.accelerator}"
        return where

    def placement(self) -> dict[str, dict[str, Any]]:
        """What the coordinator is told about each running worker (it trusts this, not them)."""
        return {w.worker_id: self._where(w.node) for w in self.running.values()}

    def finished(self, timeout_s: float) -> list[tuple[_Worker, BaseException | None]]:
        """Waits for run() calls to end: (worker, the error that ended it or None)."""
        if not self.running:
            time.sleep(timeout_s)
            return []
        ready, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=timeout_s)
        ended = []
        for ref in ready:
            worker = self.running.pop(ref)
            try:
                ray.get(ref)
                ended.append((worker, None))
            except RayError as exc:
                ended.append((worker, exc))
        return ended

    def kill_all(self) -> None:
        for worker in self.running.values():
            ray.kill(worker.actor, no_restart=True)
        self.running.clear()


# -- supervising --------------------------------------------------------------------------

def _supervise(options: RunOptions, coordinator: Any, pool: _WorkerPool) -> dict[str, Any]:
    spec = options.config.workers
    budget = options.max_replacements
    # Crashes a run survives by starting new workers; a node that leaves is not a crash.
    crashes_left = 2 * (spec.initial_count() or spec.max_workers or 4) if budget is None else budget
    status: dict[str, Any] = {}
    stopping, last_error, done = False, "", False
    if pool.fill(None) == 0:
        if options.address is None:  # a local instance will not grow: say so now
            raise SwarmError(f"no node of this Ray instance fits a worker (workers: gpus_per_worker "
                             f"{spec.gpus_per_worker}, cpus_per_worker {spec.cpus_per_worker}); it has "
                             f"{_capacity(pool.nodes)}")
        log.warning("no node fits a worker yet (%s); waiting for nodes to join", _capacity(pool.nodes))
    while not done:
        try:
            sent_home = False
            for worker, error in pool.finished(options.poll_s):
                if error is None:
                    sent_home = True
                    continue
                last_error = _worker_failed(coordinator, worker.worker_id, error)
                if pool.node_alive(worker.node.node_id):
                    crashes_left -= 1
                else:
                    log.warning("node %s left; its workers' trials are lost", worker.node.node_id[:8])
            if sent_home:
                # The coordinator sends a worker home once the run is ending; the status polled
                # before that may not say so yet, and refilling on it would start a new worker.
                status = _poll_status(coordinator, status)
            wind_down = stopping or bool(status.get("stop_reason"))
            if not wind_down and time.monotonic() - pool.looked_at >= NODE_POLL_S:
                pool.fill(max(crashes_left, 0))
            # Said again on every poll: a coordinator restarted by Ray forgets both.
            _tell(coordinator.set_live, pool.placement())
            if stopping:
                _tell(coordinator.request_stop)
            status = _poll_status(coordinator, status)
            if options.on_status:
                options.on_status(status)
            done = not pool.running and (stopping or bool(status.get("stop_reason"))
                                         or crashes_left <= 0)
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


def _capacity(nodes: list[Node]) -> str:
    return (f"{len(nodes)} node(s), {sum(n.cpus for n in nodes):g} CPUs and "
            f"{sum(n.gpus for n in nodes):g} GPUs in all")


def _worker_failed(coordinator: Any, worker_id: str, error: BaseException) -> str:
    reason = _one_line(error)
    log.warning("worker %s ended: %s", worker_id, reason)
    if _coordinator_gone(error):
        raise CoordinatorLost()
    _call(coordinator.worker_lost, worker_id, f"worker died: {reason}")
    return reason


def _abandon(coordinator: Any, pool: _WorkerPool) -> None:
    for worker in list(pool.running.values()):
        ray.kill(worker.actor, no_restart=True)
        _call(coordinator.worker_lost, worker.worker_id, "abandoned at the second Ctrl-C")
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
