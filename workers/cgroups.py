"""A pids cgroup per jail, where this process may make one: the kernel's bound on a fork bomb.

RLIMIT_NPROC bounds a jail's processes for an ordinary user, but the kernel exempts the host's
root from it, and a worker in a container often runs as root. Root may usually make cgroups,
though: a pids cgroup caps the jail whatever its user, and its `pids.events` tells afterwards
whether the cap was hit. Where no cgroup can be made, the jail's PID 1 poll is the only bound.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

__all__ = ["PidsGroup", "pids_group"]

_ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))  # cgroup v1's pids hierarchy, then v2


class PidsGroup:
    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def procs(self) -> Path:
        """Write a pid here to move that process (and all it starts) into the group."""
        return self.path / "cgroup.procs"

    def hit_max(self) -> bool:
        """Whether a fork was refused because the group was full."""
        try:
            for line in (self.path / "pids.events").read_text().splitlines():
                name, _, count = line.partition(" ")
                if name == "max":
                    return int(count) > 0
        except (OSError, ValueError):
            pass
        return False

    def remove(self) -> None:
        """Kills anything left in it (the jail is over) and removes it."""
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                with contextlib.suppress(OSError, ValueError):
                    for pid in self.procs.read_text().split():
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.kill(int(pid), signal.SIGKILL)
                time.sleep(0.02)


def pids_group(name: str, limit: int) -> PidsGroup | None:
    """A new pids cgroup `name` capped at `limit` processes, or None where this process may not
    make one (an ordinary user, a read-only /sys/fs/cgroup, no pids controller)."""
    for root in _ROOTS:
        if not (root / "cgroup.procs").exists():
            continue
        if root.name == "cgroup" and "pids" not in _read(root / "cgroup.subtree_control").split():
            continue  # v2 without the pids controller handed down to children
        path = root / name
        try:
            path.mkdir()
        except OSError:
            continue
        try:
            (path / "pids.max").write_text(str(limit))
            return PidsGroup(path)
        except OSError:
            PidsGroup(path).remove()
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
