"""Real subprocesses and real timeouts: each test attacks one property of the sandbox."""

from __future__ import annotations

import os
import resource
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from workers import sandbox
from workers.sandbox import SandboxResult, run_sandboxed, scrubbed_env

PY = shlex.quote(sys.executable)
BASE_ENV = {"PATH": os.environ["PATH"]}


def _run(tmp_path: Path, command: str, timeout_s: float = 10.0, **options: Any) -> SandboxResult:
    """run_sandboxed in tmp_path with a minimal env and a short grace unless told otherwise."""
    options = {"env": BASE_ENV, "kill_grace_s": 0.5, **options}
    log_path = tmp_path / "logs" / "run.log"
    return run_sandboxed(command, cwd=tmp_path, log_path=log_path, timeout_s=timeout_s, **options)


def _alive(pid: int) -> bool:
    """Whether pid runs; a zombie nobody has reaped yet counts as dead."""
    try:
        os.kill(pid, 0)
        status = Path(f"/proc/{pid}/status").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return False
    return "\nState:\tZ" not in status


def _gone(pid: int, within_s: float = 3.0) -> bool:
    """Polls until pid is dead, since killing and reaping are not instantaneous."""
    deadline = time.monotonic() + within_s
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_exit_zero_and_output_in_log_and_tail(tmp_path: Path) -> None:
    result = _run(tmp_path, "echo out; echo err >&2")
    assert (result.exit_code, result.timed_out, result.log_truncated) == (0, False, False)
    assert result.output_tail == "out\nerr\n"
    assert result.output_bytes == 8
    assert (tmp_path / "logs" / "run.log").read_text() == "out\nerr\n"


def test_nonzero_exit_code_reported(tmp_path: Path) -> None:
    result = _run(tmp_path, "echo failing; exit 3")
    assert (result.exit_code, result.timed_out, result.output_tail) == (3, False, "failing\n")


def test_killed_by_signal_is_negative(tmp_path: Path) -> None:
    result = _run(tmp_path, "kill -9 $$")
    assert (result.exit_code, result.timed_out) == (-signal.SIGKILL, False)


def test_timeout_kills_grandchildren(tmp_path: Path) -> None:
    start = time.monotonic()
    result = _run(tmp_path, "sleep 60 & echo $! > bg.pid; echo started; sleep 60", timeout_s=1.0)
    assert time.monotonic() - start < 5.0
    assert (result.exit_code, result.timed_out, result.output_tail) == (None, True, "started\n")
    assert 1.0 <= result.seconds < 5.0
    assert _gone(int((tmp_path / "bg.pid").read_text()))


def test_grandchild_killed_after_normal_exit(tmp_path: Path) -> None:
    # The grandchild also holds the output pipe open: the run must not wait for it.
    start = time.monotonic()
    result = _run(tmp_path, "sleep 60 & echo $! > bg.pid; exit 0")
    assert time.monotonic() - start < 5.0
    assert (result.exit_code, result.timed_out) == (0, False)
    assert _gone(int((tmp_path / "bg.pid").read_text()))


def test_closed_stdout_still_killed_at_timeout(tmp_path: Path) -> None:
    start = time.monotonic()
    result = _run(tmp_path, "echo bye; exec >&- 2>&-; sleep 60", timeout_s=1.0)
    assert time.monotonic() - start < 5.0
    assert (result.exit_code, result.timed_out, result.output_tail) == (None, True, "bye\n")


def test_escaped_grandchild_holding_pipe_does_not_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # setsid leaves the process group: the sandbox cannot kill it, but must not wait on it.
    monkeypatch.setattr(sandbox, "_READER_JOIN_S", 0.5)
    pid_file = "open('esc.pid', 'w').write(str(os.getpid()))"
    escape = f"import os, time\nos.setsid()\n{pid_file}\ntime.sleep(30)\n"
    (tmp_path / "escape.py").write_text(escape)
    command = f"{PY} escape.py & while [ ! -s esc.pid ]; do sleep 0.05; done; echo done"
    try:
        start = time.monotonic()
        result = _run(tmp_path, command)
        assert time.monotonic() - start < 4.0
        assert (result.exit_code, result.timed_out, result.output_tail) == (0, False, "done\n")
    finally:
        os.kill(int((tmp_path / "esc.pid").read_text()), signal.SIGKILL)


def test_env_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_PARENT_ONLY", "leak")  # env is passed as given, never inherited
    secrets = {
        "OPENAI_API_KEY": "s1", "GITHUB_TOKEN": "s2", "AWS_SECRET": "s3", "MY_PASSWORD": "s4"
    }
    base = {**secrets, "RAY_ADDRESS": "10.0.0.1:6379", "PATH": os.environ["PATH"]}
    env = scrubbed_env(base, {"SWARM_TRIAL": "7"})
    result = _run(tmp_path, "env", env=env)
    seen = dict(line.split("=", 1) for line in result.output_tail.splitlines())
    assert seen["PATH"] == os.environ["PATH"] and seen["SWARM_TRIAL"] == "7"
    assert not {*secrets, "RAY_ADDRESS", "SWARM_PARENT_ONLY"} & seen.keys()
    assert not {"s1", "s2", "s3", "s4", "10.0.0.1:6379", "leak"} & set(seen.values())


def test_scrubbed_env_is_case_insensitive_and_extra_wins() -> None:
    base = {
        "openai_api_key": "x", "Ray_Auth_Token": "y", "AWS_SECRET_ACCESS_KEY": "z",
        "HOME": "/h", "KEEP": "base",
    }
    extra = {"KEEP": "extra", "HF_TOKEN": "trusted"}
    assert scrubbed_env(base, extra) == {"HOME": "/h", "KEEP": "extra", "HF_TOKEN": "trusted"}
    assert scrubbed_env(base) == {"HOME": "/h", "KEEP": "base"}


def test_log_capped_keeps_head_and_result_block(tmp_path: Path) -> None:
    flood = f"{PY} -c 'import sys; sys.stdout.write((\"x\" * 99 + \"\\n\") * 50_000)'"
    result = _run(tmp_path, f"{flood}; printf -- '---\\nscore: 1.5\\n'", max_log_bytes=100_000)
    total = 5_000_000 + len("---\nscore: 1.5\n")
    log = (tmp_path / "logs" / "run.log").read_bytes()
    marker = f"\n[... {total - 100_000} bytes omitted by the swarm's log cap ...]\n".encode()
    assert (result.exit_code, result.output_bytes, result.log_truncated) == (0, total, True)
    assert log.startswith(b"x" * 99 + b"\n") and marker in log and len(log) < 110_000
    assert log.endswith(b"x\n---\nscore: 1.5\n") and len(log) == 100_000 + len(marker)
    assert result.output_tail.endswith("---\nscore: 1.5\n") and len(result.output_tail) == 8_000


def test_output_between_half_cap_and_cap_is_kept_whole(tmp_path: Path) -> None:
    result = _run(tmp_path, "printf '%079d\\n' 7", max_log_bytes=100)
    assert (tmp_path / "logs" / "run.log").read_text() == "0" * 78 + "7\n"
    assert (result.output_bytes, result.log_truncated) == (80, False)


def test_output_tail_is_last_chars(tmp_path: Path) -> None:
    result = _run(tmp_path, "printf 'abcdefghij'", tail_chars=4)
    assert result.output_tail == "ghij"


def test_stdin_is_devnull_and_core_dumps_off(tmp_path: Path) -> None:
    # Give the parent a live stdin and core limit, so the child cannot just inherit the good ones.
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    saved_stdin, (pipe_r, pipe_w) = os.dup(0), os.pipe()
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
        os.dup2(pipe_r, 0)
        result = _run(tmp_path, "readlink /proc/self/fd/0; cat; ulimit -c", timeout_s=3.0)
    finally:
        os.dup2(saved_stdin, 0)
        for fd in (saved_stdin, pipe_r, pipe_w):
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))
    assert (result.exit_code, result.timed_out, result.output_tail) == (0, False, "/dev/null\n0\n")


def test_a_dead_worker_takes_its_experiments_grandchildren_with_it(tmp_path: Path) -> None:
    # A stand-in worker process runs an experiment that leaves a grandchild (as a DataLoader
    # or torchrun would), then the worker is SIGKILLed mid-trial.
    pids = tmp_path / "pids"
    worker_code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from workers.sandbox import run_sandboxed\n"
        f"run_sandboxed('sleep 120 & echo $! $$ > {pids}; wait', cwd=Path('{tmp_path}'),\n"
        f"              log_path=Path('{tmp_path}/log'), timeout_s=120, env=dict(os.environ))\n")
    worker = subprocess.Popen([sys.executable, "-c", worker_code], cwd=Path(__file__).parents[1])
    deadline = time.monotonic() + 20
    while not (pids.exists() and len(pids.read_text().split()) == 2):
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.05)
    grandchild, leader = (int(p) for p in pids.read_text().split())
    worker.kill()
    worker.wait()
    assert _gone(leader, within_s=5.0)
    assert _gone(grandchild, within_s=5.0)


def test_target_env_expands_home_and_variables_of_the_workers_machine(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from workers.loop import expanded_env

    monkeypatch.setenv("HOME", "/home/ada")
    monkeypatch.setenv("CORPUS", "kjv")
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    assert expanded_env({
        "DATA": "~/.cache/$CORPUS", "PLAIN": "x", "UNSET": "$NOPE_NOT_SET",
        "SET_WINS": "${CORPUS:-~/default}", "DEFAULT": "${NOPE_NOT_SET:-~/default}",
    }) == {
        "DATA": "/home/ada/.cache/kjv", "PLAIN": "x", "UNSET": "$NOPE_NOT_SET",
        "SET_WINS": "kjv", "DEFAULT": "/home/ada/default"}
