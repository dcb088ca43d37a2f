"""Runs one untrusted experiment command: scrubbed env, own process group, capped log."""

from __future__ import annotations

import fnmatch
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["SandboxResult", "SECRET_PATTERNS", "scrubbed_env", "run_sandboxed"]

SECRET_PATTERNS: tuple[str, ...] = (
    "*_API_KEY",
    "*_TOKEN",
    "*_SECRET",
    "*_SECRET_KEY",
    "*_ACCESS_KEY",  # AWS_SECRET_ACCESS_KEY matches none of the others
    "*_PASSWORD",
    "RAY_ADDRESS",  # a candidate must not reach the cluster that runs it
    "RAY_AUTH_*",
)

# A worker that dies mid-trial must not leave its experiment holding the GPU: util-linux's
# setpriv sets the parent-death signal without a preexec_fn (unsafe in threaded actors).
_DIE_WITH_PARENT: tuple[str, ...] = (
    ("setpriv", "--pdeathsig", "KILL", "--") if shutil.which("setpriv") else ())

# The parent-death signal reaches only the experiment's first process. The watchdog kills the
# rest: it starts first, leading a new process group that the experiment then joins, and holds
# the read end of a pipe only the worker writes to. EOF without the 'done' byte means the worker
# died, at whatever moment, and the watchdog kills the whole group (DataLoader or torchrun
# children included, itself last). Started after the experiment instead, it would leave a window
# in which a killed worker orphaned grandchildren. It ignores SIGTERM, so the timeout's
# SIGTERM to the group leaves it watching through the grace period.
_WATCHDOG = ("import os, signal, sys\n"
             "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
             "if not sys.stdin.buffer.read():  # EOF with no 'done' byte: the worker died\n"
             "    os.killpg(0, signal.SIGKILL)\n")

_CHUNK = 65_536
_READER_JOIN_S = 5.0  # a pipe held open by an escaped grandchild must not hang the worker
_REAP_S = 5.0  # a leader stuck in the kernel (D state) after SIGKILL must not hang us either


@dataclass(frozen=True)
class SandboxResult:
    """What one sandboxed run did, as seen from outside."""

    exit_code: int | None  # None when it was killed at the timeout
    timed_out: bool
    seconds: float  # wall time
    output_tail: str  # last `tail_chars` chars of combined stdout+stderr
    output_bytes: int  # total bytes the process wrote
    log_truncated: bool  # True when the log on disk was capped


def _is_secret(name: str) -> bool:
    """Whether an env var name looks like a credential."""
    upper = name.upper()
    return any(fnmatch.fnmatchcase(upper, p.upper()) for p in SECRET_PATTERNS)


def scrubbed_env(base: Mapping[str, str], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """base minus secret-looking variables, plus extra (extra is trusted and wins)."""
    env = {k: v for k, v in base.items() if not _is_secret(k)}
    env.update(extra or {})
    return env


class _CappedLog:
    """Streams the head of the output to disk and keeps only a bounded tail in memory."""

    def __init__(self, path: Path, max_bytes: int, tail_chars: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("wb")
        self._head_left = max_bytes // 2
        self._tail_cap = max_bytes // 2
        # utf-8 needs at most 4 bytes a char, so this always covers `tail_chars`
        self._ring_cap = max(self._tail_cap, 4 * tail_chars)
        self._ring = bytearray()
        self._lock = threading.Lock()
        self._closed = False
        self.total = 0
        self.omitted = 0

    def drain(self, stream: IO[bytes]) -> None:
        """Reader thread: copies the pipe until EOF, or until the log is closed."""
        try:
            while (chunk := stream.read(_CHUNK)) and self._add(chunk):
                pass
        except (OSError, ValueError):
            pass  # whatever the child did to the pipe, the trial still gets a result
        finally:
            stream.close()

    def _add(self, chunk: bytes) -> bool:
        """Takes one chunk; False once the log is closed (stop reading)."""
        with self._lock:
            if self._closed:
                return False
            self.total += len(chunk)
            head = chunk[: self._head_left]
            self._head_left -= len(head)
            self._file.write(head)
            self._ring += chunk
            del self._ring[: max(0, len(self._ring) - self._ring_cap)]
            return True

    def close(self) -> None:
        """Appends the kept tail (after a marker if bytes were dropped) and closes the file."""
        with self._lock:
            self._closed = True
            rest = self.total - self._file.tell()
            kept = min(rest, self._tail_cap)
            self.omitted = rest - kept
            if self.omitted:
                marker = f"\n[... {self.omitted} bytes omitted by the swarm's log cap ...]\n"
                self._file.write(marker.encode())
            self._file.write(bytes(self._ring[len(self._ring) - kept :]))
            self._file.close()

    def tail(self, chars: int) -> str:
        """The last `chars` characters of the output."""
        with self._lock:
            text = bytes(self._ring).decode("utf-8", errors="replace")
        return text[-chars:] if chars > 0 else ""


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    """Signals the whole process group; an already empty group is fine."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # gone already, or only a setuid process of the child's is left


def _wait(proc: subprocess.Popen[bytes], pgid: int, timeout_s: float, kill_grace_s: float) -> int | None:
    """The exit code, or None after terminating the group at the timeout."""
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=kill_grace_s)
    except subprocess.TimeoutExpired:
        pass
    return None


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Collects the killed leader, bounded in time."""
    try:
        proc.wait(timeout=_REAP_S)
    except subprocess.TimeoutExpired:
        pass  # Popen reaps it later; the result does not depend on it


def _supervise(proc: subprocess.Popen[bytes], pgid: int, timeout_s: float,
               kill_grace_s: float) -> int | None:
    """Waits for the experiment, then kills its whole group whatever happened."""
    try:
        return _wait(proc, pgid, timeout_s, kill_grace_s)
    finally:
        # Also after a normal exit (or a cancelled actor): no grandchild outlives the trial.
        _signal_group(pgid, signal.SIGKILL)
        _reap(proc)


def _spawn(command: str, cwd: Path, env: Mapping[str, str], group: int | None) -> subprocess.Popen[bytes]:
    """Starts the command in process group `group` (the watchdog's), or without a watchdog in
    a session of its own; either way its whole group can be killed."""
    # No preexec_fn: the caller is a multi-threaded Ray actor, where fork+Python is unsafe.
    return subprocess.Popen(
        [*_DIE_WITH_PARENT, "/bin/bash", "-c", "ulimit -c 0\n" + command],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        bufsize=0,
        process_group=group,
        start_new_session=group is None,
    )


def run_sandboxed(
    command: str,
    *,
    cwd: Path,
    log_path: Path,
    timeout_s: float,
    env: Mapping[str, str],
    max_log_bytes: int = 2_000_000,
    tail_chars: int = 8_000,
    kill_grace_s: float = 2.0,
) -> SandboxResult:
    """Runs `command` under bash in its own process group and kills that group when done."""
    log = _CappedLog(log_path, max_log_bytes, tail_chars)
    start = time.monotonic()
    watchdog = _start_watchdog()
    try:
        proc = _spawn(command, cwd, env, group=watchdog.pid if watchdog else None)
    except BaseException:
        log.close()
        if watchdog is not None:
            _stop_watchdog(watchdog)
        raise
    assert proc.stdout is not None
    pgid = watchdog.pid if watchdog else proc.pid  # the group the experiment runs in
    reader = threading.Thread(target=log.drain, args=(proc.stdout,), daemon=True)
    reader.start()
    try:
        exit_code = _supervise(proc, pgid, timeout_s, kill_grace_s)
    finally:
        if watchdog is not None:
            _stop_watchdog(watchdog)
    reader.join(timeout=_READER_JOIN_S)
    seconds = time.monotonic() - start
    log.close()
    return SandboxResult(
        exit_code=exit_code,
        timed_out=exit_code is None,
        seconds=seconds,
        output_tail=log.tail(tail_chars),
        output_bytes=log.total,
        log_truncated=log.omitted > 0,
    )


def _start_watchdog() -> subprocess.Popen[bytes] | None:
    """The watchdog, leading a new process group (None if it cannot start: the experiment is
    still supervised and killed, and only a worker dying mid-trial could then orphan it)."""
    try:
        return subprocess.Popen([sys.executable, "-c", _WATCHDOG], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, process_group=0)
    except OSError:
        return None


def _stop_watchdog(watchdog: subprocess.Popen[bytes]) -> None:
    """The trial is over: tell the watchdog (usually killed with the group already) and reap it."""
    pipe = watchdog.stdin
    assert pipe is not None, "the watchdog is started with a pipe on its stdin"
    for step in (lambda: pipe.write(b"done"), pipe.close):
        try:
            step()
        except OSError:
            pass  # it died with its group: the pipe is broken
    try:
        watchdog.wait(timeout=_REAP_S)
    except subprocess.TimeoutExpired:
        watchdog.kill()
        watchdog.wait(timeout=_REAP_S)
