"""The jail every trial's commands run in, seen from the worker: what to show, what to hide, limits.

The namespaces come from util-linux `unshare` (no privileges: an unprivileged user namespace)
and the view is built by `workers/jail_init.py`, the jail's PID 1. Chosen over bubblewrap,
which would do the mounts for us, because util-linux is on every Linux a worker runs on while
bwrap is a system package that a user without root cannot install on a GPU node; and over
cgroups for limits because a worker may use cgroup v2 only where systemd delegates a subtree
to it (rarely on a shared node, never on cgroup v1): rlimits and PID 1's own poll work everywhere.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from workers.cgroups import pids_group
from workers.feedback import FEEDBACK_BYTES
from workers.relay import Endpoint, Outside
from workers.sandbox import SandboxResult, run_sandboxed

__all__ = ["JailLimits", "JailPlan", "JailReport", "JailUnavailable", "IN_JAIL", "availability",
           "run_jailed", "python_paths"]

_INIT = Path(__file__).with_name("jail_init.py")
_OWN_PROCESSES = 8  # bash, unshare, PID 1 and the relay: not the trial's to spend
_UNSHARE = ("unshare", "--user", "--map-root-user", "--mount", "--pid", "--net", "--ipc", "--fork",
            "--kill-child", "--mount-proc")


@dataclass(frozen=True)
class InJail:
    """Where things are inside the jail (the environment tells the command)."""

    scratch: str = "/tmp"
    work: str = "/tmp/work"
    home: str = "/tmp/home"
    artifacts: str = "/tmp/artifacts"
    feedback: str = "/tmp/feedback.txt"  # SWARM_FEEDBACK_FILE: copied out when it ends


IN_JAIL = InJail()


class JailUnavailable(RuntimeError):
    """This machine cannot create the jail's namespaces."""


@dataclass(frozen=True)
class JailLimits:
    memory_mb: int | None = None  # resident memory of all its processes together
    processes: int | None = 1024
    cpu_s: int | None = None  # CPU seconds of any one process
    file_mb: int | None = 4096  # the largest file it may write
    scratch_mb: int = 4096  # /tmp, its checkout copy and artifacts included


@dataclass(frozen=True)
class JailPlan:
    """One command's jail. `copy`: the checkout's files (relative) its copy gets; `readonly` of
    them are mounted read-only; `cover` host paths read as empty; `expose` host paths stay visible
    read-only even under a covered one."""

    command: str  # run by bash in the copy
    checkout: Path
    copy: tuple[str, ...]
    readonly: tuple[str, ...] = ()
    cover: tuple[str, ...] = ()
    expose: tuple[str, ...] = ()
    artifacts_in: Path | None = None  # shown read-only as IN_JAIL.artifacts
    keep_artifacts: bool = False  # IN_JAIL.artifacts copied to folder/artifacts when it ends
    network: tuple[Endpoint, ...] = ()
    limits: JailLimits = field(default_factory=JailLimits)


@dataclass(frozen=True)
class JailReport:
    """What the jail's PID 1 saw (None fields: it never got that far)."""

    setup_ms: float | None = None
    teardown_ms: float | None = None
    limit: str | None = None  # memory, processes, cpu, file_size or disk
    detail: str = ""
    setup_error: str = ""
    artifacts_skipped: tuple[str, ...] = ()


def availability() -> str | None:
    """Why a jail cannot be made here, with the system's words; None when it can."""
    missing = [tool for tool in ("unshare", "setpriv") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found (util-linux)"
    try:
        done = subprocess.run([*_UNSHARE, "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return f"user namespaces are not available: {said}"
    return None


def python_paths() -> tuple[str, ...]:
    """The interpreter's installation: the jail must show it wherever it lies (a venv in $HOME)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(sys.executable).resolve().parent.parent)}
    return tuple(sorted(p for p in paths if p and p != "/"))


def run_jailed(plan: JailPlan, *, folder: Path, log_path: Path, timeout_s: float,
               env: Mapping[str, str], max_log_bytes: int) -> tuple[SandboxResult, JailReport]:
    """Runs plan's command in its jail; `folder` is the trial's own (emptied) directory on the
    host, invisible from inside (it gets the report, and the artifacts kept). The sandbox's
    supervision (timeout, log cap, watchdog) wraps it."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    mountpoint, report_path = folder / "scratch", folder / "report.json"
    mountpoint.mkdir()
    # A Unix socket's path must fit in 108 bytes: not under the trial's (deep) folder.
    net = Path(tempfile.mkdtemp(prefix="swarm-net-")) if plan.network else None
    relays = Outside(list(plan.network), net) if net else None
    group = None
    try:
        sockets = relays.start() if relays else {}
        spec = {
            "command": ["/bin/bash", "-c", plan.command],
            "source": str(plan.checkout), "copy": list(plan.copy), "readonly": list(plan.readonly),
            "cover": list(plan.cover), "expose": list(plan.expose), "mountpoint": str(mountpoint),
            "artifacts_in": str(plan.artifacts_in) if plan.artifacts_in else None,
            "keep_artifacts": plan.keep_artifacts, "private": str(folder), "feedback_bytes": FEEDBACK_BYTES,
            "routes": [{"host": e.host, "port": e.port, "socket": str(s)} for e, s in sockets.items()],
            **asdict(plan.limits),
        }
        spec_path = folder / "spec.json"
        spec_path.write_text(json.dumps(spec))
        inside = {**env, "HOME": IN_JAIL.home, "TMPDIR": IN_JAIL.scratch, "SWARM_ARTIFACTS": IN_JAIL.artifacts,
                  "SWARM_FEEDBACK_FILE": IN_JAIL.feedback,
                  "SWARM_SCRATCH": IN_JAIL.scratch, "SWARM_ISOLATED": "1", "PWD": IN_JAIL.work}
        command = shlex.join([*_UNSHARE, sys.executable, "-I", str(_INIT), str(spec_path)])
        # the bash that runs unshare joins the group before it execs: no fork escapes the cap
        group = pids_group(f"swarm-{os.getpid()}-{folder.parent.name}-{folder.name}",
                           (plan.limits.processes or 1024) + _OWN_PROCESSES)
        if group:
            command = f"echo $$ > {shlex.quote(str(group.procs))} && exec {command}"
        result = run_sandboxed(command, cwd=plan.checkout, log_path=log_path, timeout_s=timeout_s, env=inside,
                               max_log_bytes=max_log_bytes)
    finally:
        if relays and net:
            relays.close()
            shutil.rmtree(net, ignore_errors=True)
    report = _read_report(report_path)
    if group:
        if group.hit_max() and not report.limit:
            report = replace(report, limit="processes",
                             detail=f"reached {plan.limits.processes} processes (limits.processes)")
        group.remove()
    _remove(mountpoint)
    return result, report


def _read_report(path: Path) -> JailReport:
    try:
        raw = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return JailReport()  # killed before it wrote (the timeout)
    return JailReport(setup_ms=raw.get("setup_ms"), teardown_ms=raw.get("teardown_ms"), limit=raw.get("limit"),
                      detail=raw.get("detail") or "", setup_error=raw.get("setup_error") or "",
                      artifacts_skipped=tuple(raw.get("artifacts_skipped") or ()))


def _remove(mountpoint: Path) -> None:
    try:
        mountpoint.rmdir()
    except OSError:
        pass  # the jail's namespace held it; the trial folder goes with the worker's scratch


# Where a host keeps the Unix sockets of its services (Docker's, databases', the journal's):
# a socket on the file system is reached whatever the network namespace.
_SOCKET_PLACES = ("/run", "/var/run", "/dev/log")


def hidden_from_host(paths: Iterable[str | os.PathLike[str]]) -> tuple[str, ...]:
    """The host paths a jail covers, every one: the temp dirs, the homes and the sockets'
    places, plus `paths`."""
    homes = {str(Path.home()), os.environ.get("HOME", "")}
    tmp = {tempfile.gettempdir(), "/tmp", "/var/tmp", os.environ.get("RAY_TMPDIR", "")}
    places = {os.path.realpath(p) for p in _SOCKET_PLACES if os.path.lexists(p)}
    return tuple(sorted({str(p) for p in [*homes, *tmp, *places, *map(str, paths)] if p and str(p) != "/"}))
