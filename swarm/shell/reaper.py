"""Ends the local Ray instance a driver started, however the driver ends (kill -9 included).

Ray ties its gcs and raylet to the driver (the parent-death signal), but what the raylet starts,
its dashboard and runtime-env agents among them, outlives a killed driver. The reaper is a
small process in its own session that holds the read end of a pipe only the driver writes to.
EOF means the driver is gone; the reaper then ends that Ray session's processes, found by its
session directory, never another instance's, and sweeps the worker scratch they left.

Only for an instance the driver started itself: never for `--address`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

from workers import scratch

__all__ = ["watch", "session_processes", "end_session", "GRACE_S"]

GRACE_S = 3.0  # SIGTERM, then this long, then SIGKILL
_PACKAGES = Path(__file__).resolve().parents[2]
_WATCHING: list[subprocess.Popen[bytes]] = []  # held for the driver's life: closing is the signal


def watch(session_dir: str) -> None:
    """Starts a reaper for the Ray session at `session_dir`, which this process started."""
    logs = Path(session_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "swarm_reaper.log", "ab") as out:
        # Its own session: the terminal's Ctrl-C, sent to the driver's process group, is not its.
        # Run from the folder that holds the swarm's packages, so it imports them installed or not.
        _WATCHING.append(subprocess.Popen(
            [sys.executable, "-m", "swarm.shell.reaper", session_dir], stdin=subprocess.PIPE,
            stdout=out, stderr=out, cwd=_PACKAGES, start_new_session=True))


def session_processes(session_dir: str) -> list[psutil.Process]:
    """The processes of the Ray session at `session_dir`, and everything they started.

    Named by the session directory in their command line; Ray's agents and workers rename
    themselves (`ray::DashboardAgent`), so those are known by the session's logs they hold open.
    """
    marked = [p for p in psutil.process_iter() if _of_session(p, session_dir)]
    found = {p.pid: p for p in marked}
    for process in marked:
        try:
            found.update((c.pid, c) for c in process.children(recursive=True))
        except psutil.Error:
            pass  # ended meanwhile
    found.pop(psutil.Process().pid, None)
    return list(found.values())


def end_session(session_dir: str, grace_s: float = GRACE_S) -> list[psutil.Process]:
    """SIGTERM to every process of the session, SIGKILL to what is left after `grace_s`;
    returns what it found."""
    processes = session_processes(session_dir)
    for process in processes:
        try:
            process.terminate()
        except psutil.Error:
            pass  # ended meanwhile
    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace_s)
    return processes


def _of_session(process: psutil.Process, session_dir: str) -> bool:
    try:
        command = process.cmdline()
        if any(part.endswith(session_dir) or session_dir + "/" in part for part in command):
            return True  # not a bare substring: session_..._5676 must not match session_..._56761
        renamed = bool(command) and command[0].startswith("ray::")
        return renamed and any(path.startswith(session_dir + "/") for path in _open_paths(process))
    except psutil.Error:
        return False  # ended meanwhile, or another user's


def _open_paths(process: psutil.Process) -> list[str]:
    """What the process holds open. On Linux from /proc itself: psutil leaves out deleted files,
    and a session directory removed under a live instance must not hide its processes."""
    fds = Path(f"/proc/{process.pid}/fd")
    if not fds.is_dir():
        return [f.path for f in process.open_files()]
    paths = []
    for fd in _listdir(fds):
        try:
            paths.append(os.readlink(fds / fd))
        except OSError:
            pass  # closed meanwhile
    return paths


def _listdir(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []  # ended meanwhile, or another user's


def _main(session_dir: str) -> None:
    sys.stdin.buffer.read()  # returns at EOF: the driver exited or was killed
    ended = end_session(session_dir)
    swept = scratch.sweep()
    print(f"driver gone: ended {len(ended)} processes of {session_dir}; "
          f"removed {len(swept)} scratch folders", flush=True)


if __name__ == "__main__":
    _main(sys.argv[1])
