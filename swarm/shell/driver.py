"""The driver: config -> coordinator -> workers -> wait.

It connects to Ray, opens (or takes over) the run's coordinator, starts workers where the plan
has room, and after every poll carries out what `supervise.step` decides.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import ray
from ray._private.grpc_utils import init_grpc_channel
from ray._private.services import canonicalize_bootstrap_address
from ray._raylet import Config as RayConfig  # type: ignore[attr-defined]
from ray.core.generated.gcs_service_pb2 import GetClusterIdRequest  # type: ignore[attr-defined]
from ray.core.generated.gcs_service_pb2_grpc import NodeInfoGcsServiceStub
from ray.exceptions import GetTimeoutError

from coordinator.actor import CoordinatorActor
from coordinator.client import DRIVER_CALLS, CoordinatorClient
from coordinator.status import RunStatus
from swarm.core.config import SwarmConfig
from swarm.core.errors import ConfigError, CoordinatorLost, CoordinatorUnreachable, SwarmError
from swarm.core.retry import ONCE
from swarm.shell import reaper, supervise
from swarm.shell.fleet import Fleet
from swarm.shell.placement import Node
from swarm.shell import reach
from swarm.shell.stops import StopSignals, stopping_message

__all__ = [
    "RunOptions", "run_swarm", "resolve_target_repo", "coordinator_name", "connect",
    "live_status", "ORPHANED_AFTER_S",
]

log = logging.getLogger("swarm.driver")

# A coordinator whose driver has been silent this long was left behind by a driver killed
# outright (it is detached); a new driver of the same run directory replaces it.
ORPHANED_AFTER_S = 30.0


@dataclass
class RunOptions:
    config: SwarmConfig
    run_dir: Path
    resume: bool = False
    address: str | None = None  # None: start a local Ray instance (unless one is connected)
    poll_s: float = 0.5
    on_status: Callable[[RunStatus | None], None] | None = None  # live progress display
    max_replacements: int | None = None  # default: 2 per configured worker
    orphaned_after_s: float = ORPHANED_AFTER_S


def run_swarm(options: RunOptions) -> RunStatus:
    """Runs until a stopping rule holds, or a stop signal (SIGINT, SIGTERM) comes; a second
    signal abandons the trials in flight. Returns the final status."""
    config, run_dir = options.config, options.run_dir.resolve()
    connect(options.address, config)
    with StopSignals() as signals:  # after connect: ray.init installs a SIGTERM handler of its own
        session = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        client = _start_coordinator(config, run_dir, session, options.resume, options.orphaned_after_s)
        fleet = Fleet(config, client, f"{config.name}-{session}", (str(run_dir),))
        log.info("session %s: workers %s, run dir %s", session, config.workers.count, run_dir)
        ended = "the driver stopped on an error"
        try:
            final = _supervise(options, client, fleet, signals)
            ended = final.stop_reason or "stopped"
        except SwarmError as exc:
            ended = str(exc)
            raise
        finally:
            fleet.kill_all()
            _end_session(client, ended)
            ray.kill(client.handle, no_restart=True)
    _track_report(config, run_dir)
    return final


def _track_report(config: SwarmConfig, run_dir: Path) -> None:
    """A tracked run's report (report.md, progress.png, ...) is written and added to its tracker
    run once the session has ended, where the run directory is on this machine."""
    if config.tracking.kind is None or not (run_dir / "ledger.jsonl").exists():
        return
    from coordinator.trackers import upload_report
    from swarm.shell.report.writer import write_report  # matplotlib loads here

    try:
        paths = write_report(run_dir)
    except (SwarmError, OSError, ValueError) as exc:
        log.warning("the report for the tracker was not written: %s", exc)
        return
    tracking_log = logging.getLogger("coordinator.tracking")  # its lines go to swarm.log too
    added = [h for h in logging.getLogger("swarm").handlers if h not in tracking_log.handlers]
    for handler in added:
        tracking_log.addHandler(handler)
    try:
        upload_report(config, run_dir, paths)
    finally:
        for handler in added:
            tracking_log.removeHandler(handler)


def _end_session(client: CoordinatorClient, reason: str) -> None:
    """Told to the coordinator once the workers are stopped: the ledger then says the session
    ended (else `swarm status` takes the driver for killed once its heartbeat stops)."""
    try:
        client.call("end_session", reason, policy=ONCE(10.0))
    except SwarmError:  # the coordinator is gone or stuck: the next resume says what was lost
        log.warning("the coordinator did not record the session's end")


def resolve_target_repo(config: SwarmConfig, config_path: Path) -> SwarmConfig:
    """A relative target.repo, and each relative proposer.context file, is looked up in the
    current directory, then beside the config."""
    context = [_found(config_path, "proposer.context", p, "give an existing file") for p in config.proposer.context]
    if context != config.proposer.context:
        config = config.with_overrides({"proposer.context": context})
    repo = config.target.repo
    if "://" in repo or repo.startswith("git@") or Path(repo).is_absolute():
        return config
    return config.with_overrides({"target.repo": _found(config_path, "target.repo", repo,
                                                        "give a directory or a git URL")})


def _found(config_path: Path, key: str, given: str, fix: str) -> str:
    if Path(given).is_absolute():
        return given
    for base in (Path.cwd(), config_path.resolve().parent):
        if (base / given).exists():
            return str((base / given).resolve())
    raise ConfigError(f"{config_path}: {key} '{given}' is neither in {Path.cwd()} nor in "
                      f"{config_path.resolve().parent}; {fix}")


# -- connecting and starting ------------------------------------------------------------------

def connect(address: str | None, config: SwarmConfig) -> None:
    """Joins `address`, or starts a local Ray instance sized for the workers; no-op if connected."""
    if ray.is_initialized():
        return
    if address:
        _join(address)
        return
    # A local instance gets enough logical CPUs for the workers asked for: a GPU-bound or
    # waiting experiment leaves the cores idle, and `--workers 8` on a laptop means 8.
    count = config.workers.initial_count() or 0
    cpus = max(os.cpu_count() or 1, int(count * config.workers.cpus_per_worker + 0.999))
    context = ray.init(address="local", namespace="swarm", num_cpus=cpus, include_dashboard=False,
                       log_to_driver=False)
    # ends it whole, however this driver ends; a local ray.init returns a RayContext
    reaper.watch(context.address_info["session_dir"])  # type: ignore[attr-defined]


def live_status(address: str, run_dir: Path) -> RunStatus:
    """The status of a run from its live coordinator on the cluster at `address`."""
    if not ray.is_initialized():  # the dashboard asks every few seconds
        _join(address)
    try:
        handle = ray.get_actor(coordinator_name(run_dir))
    except ValueError:
        raise SwarmError(f"no live coordinator for {run_dir.resolve()} on {address}; give the run "
                         "directory exactly as the driver was given it, or read its ledger: "
                         "swarm status RUN_DIR on the head") from None
    status = CoordinatorClient(handle).status()
    if status is None:
        raise SwarmError(f"the coordinator of {run_dir} did not answer within 30 s")
    return status


def _join(address: str) -> None:
    """ray.init to a cluster, once its head has answered one call: to nothing, ray.init retries
    for minutes; to a head that wants a token, for 20 s, and then says nothing of the token."""
    if not address.startswith("ray://"):  # Ray Client has its own protocol, not a GCS
        _check_head(address)
    ray.init(address=address, namespace="swarm", log_to_driver=False)


def _check_head(address: str) -> None:
    """Raises the one line that says why `address` cannot be joined; turns token mode on where
    a token is at hand (see reach.wants_token_mode)."""
    try:
        resolved = canonicalize_bootstrap_address(address)
    except ConnectionError as exc:  # `auto` with no cluster found
        raise SwarmError(f"--address {address}: {exc}") from None
    except ValueError:
        raise SwarmError(f"--address {address}: give auto or HOST:PORT, the head's GCS address "
                         "(e.g. 10.0.0.1:6379); http://HEAD:8265 is the dashboard, for `ray job submit`") from None
    if resolved is None:  # "local": ray.init starts an instance
        return
    token = reach.find_token(os.environ, Path.home())
    if reach.wants_token_mode(os.environ, token):
        os.environ["RAY_AUTH_MODE"] = "token"
        RayConfig.initialize("")  # Ray reads the mode once; read it again (as ray.init does for auto)
    code, details = _ask_head(resolved)
    if why := reach.refusal(_named(address, resolved), code, details, token, os.environ.get("RAY_AUTH_MODE")):
        raise SwarmError(why)


def _named(address: str, resolved: str) -> str:
    """The address as the user gave it, and where Ray looked when that was not the address given."""
    if os.environ.get("RAY_ADDRESS"):
        return f"{resolved} (from RAY_ADDRESS, which Ray puts before --address)"
    return f"{resolved} (--address auto)" if address == "auto" else address


def _ask_head(address: str) -> tuple[str, str]:
    """One call to the GCS at `address` with Ray's own channel (its TLS and token settings):
    the gRPC status name and details."""
    channel = init_grpc_channel(address)
    try:
        stub = NodeInfoGcsServiceStub(channel)  # type: ignore[no-untyped-call]
        stub.GetClusterId(GetClusterIdRequest(), timeout=reach.PROBE_TIMEOUT_S)
        return "OK", ""
    except Exception as exc:  # grpc.RpcError; grpc is Ray's dependency, not imported by name here
        code = getattr(exc, "code", None)
        if not callable(code):
            raise
        return code().name, str(exc.details())  # type: ignore[attr-defined]
    finally:
        channel.close()


def coordinator_name(run_dir: Path) -> str:
    """One coordinator per run directory in a cluster: its actor name is derived from the path."""
    return "swarm-coordinator-" + hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:12]


def _start_coordinator(config: SwarmConfig, run_dir: Path, session: str, resume: bool,
                       orphaned_after_s: float) -> CoordinatorClient:
    name = coordinator_name(run_dir)
    _replace_orphan(name, run_dir, orphaned_after_s)
    head = {"node:__internal_head__": 0.001}  # the run directory lives on the head node
    # Detached: a `ray job submit` driver that dies does not take the run's state with it; a
    # driver started again takes over (see _replace_orphan) and the ledger has everything.
    handle = CoordinatorActor.options(  # type: ignore[attr-defined]
        name=name, lifetime="detached", resources=head).remote(config, str(run_dir), session, resume)
    try:
        error = ray.get(handle.ready.remote(), timeout=300)  # a big clone may take a while
    except GetTimeoutError:
        error = "the coordinator did not open the run directory within 300 s"
    except KeyboardInterrupt:  # a second stop signal while it opened: leave no coordinator behind
        ray.kill(handle, no_restart=True)
        raise
    if error:
        ray.kill(handle, no_restart=True)
        raise SwarmError(error)
    return CoordinatorClient(handle, DRIVER_CALLS)


def _replace_orphan(name: str, run_dir: Path, orphaned_after_s: float) -> None:
    """Refuses a run directory another live driver runs; kills a coordinator left behind."""
    try:
        existing = CoordinatorClient(ray.get_actor(name))
    except ValueError:
        return  # no such actor: good
    try:
        silence = float(existing.call("driver_silence_s", policy=ONCE(30.0)))
    except CoordinatorLost:
        silence = float("inf")  # dead for good: nobody is running the run through it
    except CoordinatorUnreachable:
        # busy or restarting (replaying its ledger) is not orphaned: its driver may be alive
        raise SwarmError(f"the coordinator of {run_dir} is busy or restarting; try again in a "
                         "minute") from None
    if silence < orphaned_after_s:
        raise SwarmError(_taken(run_dir, silence, orphaned_after_s))
    log.warning("replacing the coordinator of %s: its driver has been silent %.0f s", run_dir, silence)
    ray.kill(existing.handle, no_restart=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the name is free once the kill has gone through
        try:
            ray.get_actor(name)
            time.sleep(0.2)
        except ValueError:
            return


def _taken(run_dir: Path, silence_s: float, orphaned_after_s: float) -> str:
    """The refusal of a run directory whose coordinator still hears from its driver, or did
    until a moment ago: a driver killed outright looks alive until `orphaned_after_s`."""
    wait_s = max(1, math.ceil(orphaned_after_s - silence_s))
    return (f"{run_dir} is already being run by another driver on this cluster, which last spoke "
            f"{silence_s:.0f} s ago; if that driver was killed, its coordinator is taken over once "
            f"it has been silent {orphaned_after_s:.0f} s: run this command again in {wait_s} s")


# -- supervising --------------------------------------------------------------------------

def _supervise(options: RunOptions, client: CoordinatorClient, fleet: Fleet,
               signals: StopSignals) -> RunStatus:
    spec = options.config.workers
    state = supervise.start(options.max_replacements, spec.initial_count(), spec.max_workers)
    if not signals.received:  # a stop asked for while the coordinator opened starts nothing
        _first_fill(options, fleet)
    status: RunStatus | None = None
    while True:
        try:
            if signals.first and not state.stopping:
                state = supervise.interrupted(state)
                client.tell("request_stop")  # now: the stop holds even if a second signal cuts in
                log.info("%s: no new work; waiting for trials in flight", signals.first)
                _show(options, replace(status, stop_reason=stopping_message(signals.first))
                      if status else None)
            state, status, done = _poll(options, client, fleet, state, status)
            if done:
                break
        except KeyboardInterrupt:  # only the second stop signal raises it (see stops.py)
            why = f"abandoned at the second stop signal ({', '.join(signals.received)})"
            log.info("%s: %d trials in flight", why, len(fleet.running))
            client.tell("request_stop")  # both signals may have come within one poll
            for worker_id in fleet.kill_all():
                client.worker_lost(worker_id, why)
            break
    return _final(client, state, status)


def _first_fill(options: RunOptions, fleet: Fleet) -> None:
    """Starts the first workers; a local instance that fits none will never grow: say so now."""
    if fleet.fill(None) > 0:
        return
    spec = options.config.workers
    if options.address is None:
        raise SwarmError(f"no node of this Ray instance fits a worker (workers: gpus_per_worker "
                         f"{spec.gpus_per_worker}, cpus_per_worker {spec.cpus_per_worker}); it has "
                         f"{_capacity(fleet.nodes)}")
    log.warning("no node fits a worker yet (%s); waiting for nodes to join", _capacity(fleet.nodes))


def _poll(options: RunOptions, client: CoordinatorClient, fleet: Fleet, state: supervise.Supervision,
          status: RunStatus | None) -> tuple[supervise.Supervision, RunStatus | None, bool]:
    """One round: how workers ended, what the coordinator says, and what `supervise.step` makes
    of both, carried out. Returns the new state, the status, and whether the session is over."""
    ended = fleet.finished(options.poll_s)
    status = client.status(status)
    state, moves = supervise.step(state, ended, len(fleet.running),
                                  status.stop_reason if status else None, fleet.look_due())
    if moves.coordinator_gone:
        raise CoordinatorLost("a worker found the coordinator dead; nothing it recorded is lost: "
                              "continue with `swarm run CONFIG --resume`")
    for worker_id, reason in moves.lost:
        client.worker_lost(worker_id, reason)
    if moves.refill is not None:
        fleet.fill(moves.refill)
    # Said again on every poll: a coordinator restarted by Ray forgets both.
    client.tell("set_live", fleet.placement())
    if state.stopping:
        client.tell("request_stop")
    _show(options, status)
    return state, status, moves.done


def _final(client: CoordinatorClient, state: supervise.Supervision, status: RunStatus | None) -> RunStatus:
    final = client.status(status)
    if final is None:
        raise CoordinatorUnreachable("the coordinator did not say how the run ended; nothing it "
                                     "recorded is lost: see `swarm status RUN_DIR`")
    if why := supervise.failure(state, final.stop_reason):
        raise SwarmError(why)
    return final


def _show(options: RunOptions, status: RunStatus | None) -> None:
    if options.on_status:
        options.on_status(status)


def _capacity(nodes: list[Node]) -> str:
    return (f"{len(nodes)} node(s), {sum(n.cpus for n in nodes):g} CPUs and "
            f"{sum(n.gpus for n in nodes):g} GPUs in all")
