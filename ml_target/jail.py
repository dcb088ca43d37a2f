"""The training phase's jail: the candidate runs where the validation data does not exist.

Same user, so file permissions cannot hide anything; Linux namespaces can. The training command
runs inside new user, mount and PID namespaces (util-linux `unshare`, no privileges needed):

- each hidden path is covered by an empty read-only tmpfs (a file by /dev/null), so the held-out
  documents and their downloaded sources read as empty there;
- the whole file system is read-only except the trial's own output directory and a fresh
  /dev/shm, so train.py cannot plant code that runs later outside the jail (a .pth file in
  site-packages, a patched library), rewrite the data or touch other trials;
- a network namespace of its own with no interfaces up: no downloading the held-out text again,
  no reaching Ray or anything else listening on the machine;
- every capability is then dropped and `no_new_privs` set before train.py starts, so it cannot
  undo any of this, and a nested namespace would only see the mounts locked in place;
- /proc shows only the jail's own processes, so the harness's memory, file descriptors and
  environment are out of reach;
- train.py is PID 1 of the jail: when it exits, the kernel kills whatever it left running.

`python jail.py enter --hide PATH ... --writable DIR -- COMMAND` is the step inside the namespaces
that arranges the mounts and then execs COMMAND. Agents must not edit this file (the swarm hash-checks it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MS_RDONLY, MS_BIND, MS_REMOUNT = 0x1, 0x1000, 0x20
MOUNT_ATTR_RDONLY, AT_RECURSIVE, AT_FDCWD = 0x1, 0x8000, -100
SYS_MOUNT_SETATTR = 442  # the same number on x86_64 and aarch64 (Linux 5.12+)
DROP_PRIVILEGES = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
UNSHARE = ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--net", "--ipc", "--fork",
           "--kill-child", "--mount-proc"]


class JailUnavailable(RuntimeError):
    """This machine cannot create the namespaces (no `unshare`, or user namespaces disabled)."""


def jailed_command(command: list[str], hide: list[Path], writable: Path) -> list[str]:
    """command wrapped so it runs with every path in hide covered and only writable writable."""
    missing = [tool for tool in ("unshare", "setpriv") if shutil.which(tool) is None]
    if missing:
        raise JailUnavailable(f"{' and '.join(missing)} not found (util-linux)")
    covers = [arg for path in hide for arg in ("--hide", str(path))]
    return [*UNSHARE, sys.executable, str(Path(__file__).resolve()), "enter", *covers,
            "--writable", str(writable), "--", *DROP_PRIVILEGES, *command]


def check_available() -> None:
    """Raises JailUnavailable, with the system's reason, when namespaces cannot be created here."""
    probe = jailed_command(["true"], [], Path(tempfile.gettempdir()))
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JailUnavailable(str(exc)) from exc
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise JailUnavailable(reason)


_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    encoded = [s.encode() if s is not None else None for s in (source, target, fstype, data)]
    if _LIBC.mount(encoded[0], encoded[1], encoded[2], flags, encoded[3]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _set_read_only(path: str, read_only: bool, recursive: bool) -> None:
    """Sets or clears the read-only flag of the mount at path (and every mount below it)."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY if read_only else 0, 0 if read_only else MOUNT_ATTR_RDONLY, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    if _LIBC.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, path.encode(), flags, ctypes.byref(attr),
                     ctypes.sizeof(attr)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount_setattr {path}: {os.strerror(err)} (needs Linux 5.12 or newer)")


def _cover(path: Path) -> None:
    """Makes path read as empty: a read-only tmpfs over a directory, /dev/null over a file."""
    if path.is_dir():
        _mount("none", str(path), "tmpfs", MS_RDONLY, "size=4k,mode=0555")
    elif path.exists():
        _mount("/dev/null", str(path), None, MS_BIND, None)
        _mount("none", str(path), None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)


def _enter(argv: list[str]) -> None:
    if "--" not in argv:
        sys.exit("usage: jail.py enter [--hide PATH]... [--writable DIR]... -- COMMAND...")
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    hidden = [Path(options[i + 1]) for i, opt in enumerate(options) if opt == "--hide"]
    writable = [options[i + 1] for i, opt in enumerate(options) if opt == "--writable"]
    for path in hidden:
        _cover(path)
    for path in writable:
        _mount(path, path, None, MS_BIND, None)  # its own mount, so it can stay writable alone
    if os.path.isdir("/dev/shm"):
        _mount("none", "/dev/shm", "tmpfs", 0, "mode=1777")  # not the machine's shared one
        writable.append("/dev/shm")
    _set_read_only("/", True, recursive=True)
    for path in writable:
        _set_read_only(path, False, recursive=False)
    os.execvp(command[0], command)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "enter":
        sys.exit("jail.py is run by prepare.py: python jail.py enter [--hide PATH]... -- COMMAND...")
    _enter(sys.argv[2:])
