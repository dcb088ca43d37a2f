"""A worker's scratch folder on its node: `<tmp>/swarm-workers/<session>/<worker>/`.

Claimed with an owner record (host, pid, start time) and a watchdog that removes it when the
worker process dies however it dies (ray.kill, a crash, its node's Ray going away): a killed
actor runs no `finally`. A worker starting on a node sweeps what owners that are gone left
behind (their watchdog killed too, say), and never a folder whose owner still runs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import psutil

__all__ = ["Owner", "Scratch", "base", "here", "claim", "is_orphan", "sweep", "UNOWNED_AFTER_S"]

OWNER_FILE = "owner.json"
# A folder without an owner record was made by a version that wrote none, or by a worker in the
# instant between its mkdir and its record: only an old one is taken for abandoned.
UNOWNED_AFTER_S = 24 * 3600.0
# An empty session folder this young, that held no orphan, may be about to receive a starting
# worker's folder (one that loses the race recreates it: pathlib's mkdir retries its parent).
EMPTY_SESSION_AFTER_S = 60.0
# btime, from which start times are computed, moves a little with clock adjustments; a pid reused
# by another process within this much of the first's start would need millions of forks.
_SAME_START_S = 2.0

# The watchdog must outlive the worker to clean up after it, and Ray ends a dead worker's
# children and its process group: so the worker's child forks it and exits, and it leads a
# session of its own. EOF on stdin: the worker closed it or died.
_WATCHDOG = ("import os, shutil, sys\n"
             "if os.fork():\n"
             "    os._exit(0)\n"
             "os.setsid()\n"
             "sys.stdin.buffer.read()\n"
             "shutil.rmtree(sys.argv[1], ignore_errors=True)\n"
             "try:\n"
             "    os.rmdir(os.path.dirname(sys.argv[1]))  # the session's folder, once empty\n"
             "except OSError:\n"
             "    pass  # another worker of the session still works here\n")


@dataclass(frozen=True)
class Owner:
    """The process a scratch folder belongs to."""

    host: str
    pid: int
    started: float  # psutil's create_time: tells the owner from a later process with its pid


def base() -> Path:
    return Path(tempfile.gettempdir()) / "swarm-workers"


def here() -> str:
    """Where pids mean what they say: the host and, on Linux, the PID namespace (containers
    that share a /tmp but not their processes see each other's owners as other hosts)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()} {namespace}".strip()


def is_orphan(owner: Owner | None, host: str, owner_alive: bool, age_s: float) -> bool:
    """Whether a worker's folder may be removed by a sweep on `host`. Another host's (a shared
    /tmp) never is: its processes cannot be seen from here."""
    if owner is None:
        return age_s > UNOWNED_AFTER_S
    return owner.host == host and not owner_alive


class Scratch:
    """A claimed folder and its watchdog; `release` removes it now."""

    def __init__(self, root: Path, watchdog: IO[bytes]) -> None:
        self.root, self._watchdog = root, watchdog  # the write end of the watchdog's pipe

    def release(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        try:
            self.root.parent.rmdir()  # the session's folder, once its last worker here is done
        except OSError:
            pass  # another worker of the session still works here
        self._watchdog.close()  # the watchdog finds nothing left to do


def claim(root: Path) -> Scratch:
    """A fresh, empty `root` owned by this process, removed when this process ends."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    me = psutil.Process()
    owner = Owner(here(), me.pid, me.create_time())
    (root / OWNER_FILE).write_text(json.dumps(asdict(owner)))
    launcher = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(root)], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
    launcher.wait()  # it exits as soon as it has forked the watchdog
    assert launcher.stdin is not None
    return Scratch(root, launcher.stdin)


def sweep(folder: Path | None = None) -> list[Path]:
    """Removes the worker folders under `folder` (default: `base()`) whose owner is gone, then
    session folders left empty; returns what it removed."""
    folder = folder or base()
    host, now, removed = here(), time.time(), []
    for session in _subdirs(folder):
        idle = now - _mtime(session) > EMPTY_SESSION_AFTER_S  # before removals touch its mtime
        for worker in _subdirs(session):
            owner = _read_owner(worker)
            if is_orphan(owner, host, owner is not None and _alive(owner), now - _mtime(worker)):
                shutil.rmtree(worker, ignore_errors=True)
                removed.append(worker)
                idle = True
        if idle and not _subdirs(session):
            try:
                session.rmdir()
                removed.append(session)
            except OSError:
                pass  # not empty after all: a worker started there meanwhile
    return removed


def _subdirs(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []  # gone meanwhile, or not ours to read


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()  # gone meanwhile: too young to touch


def _read_owner(worker: Path) -> Owner | None:
    try:
        data = json.loads((worker / OWNER_FILE).read_text())
        return Owner(str(data["host"]), int(data["pid"]), float(data["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(owner: Owner) -> bool:
    try:
        return abs(psutil.Process(owner.pid).create_time() - owner.started) <= _SAME_START_S
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # there, but not ours to inspect: leave its folder alone
