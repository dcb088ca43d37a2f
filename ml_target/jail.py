"""The training phase's jail: the candidate runs where the validation data does not exist.

Same user, so file permissions cannot hide anything; Linux namespaces can. The training command
runs inside new user, mount and PID namespaces (util-linux `unshare`, no privileges needed):

- each hidden path is covered by an empty read-only tmpfs (a file by /dev/null), so the held-out
  documents and their downloaded sources read as empty there;
- every capability is then dropped and `no_new_privs` set before train.py starts, so it cannot
  unmount the covers, and a nested namespace would only see them locked in place;
- /proc shows only the jail's own processes, so the harness's memory, file descriptors and
  environment are out of reach;
- train.py is PID 1 of the jail: when it exits, the kernel kills whatever it left running.

`python jail.py enter --hide PATH ... -- COMMAND` is the step inside the namespaces that mounts
the covers and then execs COMMAND. Agents must not edit this file (the swarm hash-checks it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

MS_RDONLY, MS_BIND, MS_REMOUNT = 0x1, 0x1000, 0x20
DROP_PRIVILEGES = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
UNSHARE = ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "--kill-child",
           "--mount-proc"]


class JailUnavailable(RuntimeError):
    """This machine cannot create the namespaces (no `unshare`, or user namespaces disabled)."""


def jailed_command(command: list[str], hide: list[Path]) -> list[str]:
    """command wrapped so it runs with every path in hide covered."""
    missing = [tool for tool in ("unshare", "setpriv") if shutil.which(tool) is None]
    if missing:
        raise JailUnavailable(f"{' and '.join(missing)} not found (util-linux)")
    covers = [arg for path in hide for arg in ("--hide", str(path))]
    return [*UNSHARE, sys.executable, str(Path(__file__).resolve()), "enter", *covers, "--",
            *DROP_PRIVILEGES, *command]


def check_available() -> None:
    """Raises JailUnavailable, with the system's reason, when namespaces cannot be created here."""
    probe = jailed_command(["true"], [])
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JailUnavailable(str(exc)) from exc
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise JailUnavailable(reason)


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    encoded = [s.encode() if s is not None else None for s in (source, target, fstype, data)]
    if libc.mount(encoded[0], encoded[1], encoded[2], flags, encoded[3]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _cover(path: Path) -> None:
    """Makes path read as empty: a read-only tmpfs over a directory, /dev/null over a file."""
    if path.is_dir():
        _mount("none", str(path), "tmpfs", MS_RDONLY, "size=4k,mode=0555")
    elif path.exists():
        _mount("/dev/null", str(path), None, MS_BIND, None)
        _mount("none", str(path), None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)


def _enter(argv: list[str]) -> None:
    if "--" not in argv:
        sys.exit("usage: jail.py enter [--hide PATH]... -- COMMAND...")
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    hidden = [Path(options[i + 1]) for i, opt in enumerate(options) if opt == "--hide"]
    for path in hidden:
        _cover(path)
    os.execvp(command[0], command)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "enter":
        sys.exit("jail.py is run by prepare.py: python jail.py enter [--hide PATH]... -- COMMAND...")
    _enter(sys.argv[2:])
