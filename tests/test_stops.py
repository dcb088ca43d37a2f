"""Stops and leftovers, with real processes: SIGTERM as a graceful stop, a second signal
abandoning trials in flight, a kill -9 of the driver leaving none of its Ray instance behind,
and worker scratch removed when workers end, are killed, or were left by a dead owner."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from swarm.shell.reaper import end_session, session_processes
from swarm.shell.stops import StopSignals, stopping_message
from workers import scratch

ROOT = Path(__file__).resolve().parents[1]
SWARM = [sys.executable, "-m", "swarm.shell.cli"]


# -- the parts alone --------------------------------------------------------------------------

def test_the_first_signal_is_counted_and_the_second_raises(tmp_path):
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs between bytecodes of the main thread
        assert signals.received == ["SIGTERM"]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        assert signals.received == ["SIGTERM", "Ctrl-C"]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_the_stopping_message_names_the_signal():
    assert stopping_message("Ctrl-C") == "Ctrl-C: finishing trials in flight (Ctrl-C again to abandon them)"
    assert stopping_message("SIGTERM") == ("SIGTERM: finishing trials in flight (SIGTERM or Ctrl-C "
                                           "again to abandon them)")


def test_an_orphan_is_a_folder_whose_owner_here_is_gone():
    owner = scratch.Owner("this-host", 123, 1000.0)
    assert scratch.is_orphan(owner, "this-host", owner_alive=False, age_s=1)
    assert not scratch.is_orphan(owner, "this-host", owner_alive=True, age_s=1e9)
    assert not scratch.is_orphan(owner, "other-host", owner_alive=False, age_s=1e9)  # can't see it
    assert not scratch.is_orphan(None, "this-host", owner_alive=False, age_s=60)
    assert scratch.is_orphan(None, "this-host", owner_alive=False, age_s=scratch.UNOWNED_AFTER_S + 1)


def claimer(root: Path) -> subprocess.Popen[str]:
    """A process that claims `root` as a worker does and then waits to be killed."""
    code = ("import sys, time\nfrom pathlib import Path\nfrom workers import scratch\n"
            "held = scratch.claim(Path(sys.argv[1]))\nprint('claimed', flush=True)\ntime.sleep(120)\n")
    process = subprocess.Popen([sys.executable, "-c", code, str(root)], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE)
    assert process.stdout and process.stdout.readline() == "claimed\n"
    return process


def test_a_killed_owners_watchdog_removes_its_folder_and_the_empty_session_folder(tmp_path):
    root = tmp_path / "swarm-workers" / "session" / "w0"
    owner = claimer(root)
    assert json.loads((root / scratch.OWNER_FILE).read_text())["pid"] == owner.pid
    (root / "repo").mkdir()
    owner.kill()
    owner.wait()
    wait_until(lambda: not (tmp_path / "swarm-workers" / "session").exists(), 30, "watchdog cleanup")


def test_the_sweep_removes_only_what_dead_owners_left(tmp_path):
    base = tmp_path / "swarm-workers"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    me = psutil.Process()
    records = {"old/w0": scratch.Owner(scratch.here(), int(gone.stdout), time.time() - 5),
               "old/w1": scratch.Owner(scratch.here(), me.pid, me.create_time() - 3600),  # pid reused
               "live/w0": scratch.Owner(scratch.here(), me.pid, me.create_time()),
               "elsewhere/w0": scratch.Owner("another-host", int(gone.stdout), 0.0)}
    for name, owner in records.items():
        (base / name).mkdir(parents=True)
        (base / name / scratch.OWNER_FILE).write_text(json.dumps(owner.__dict__))
    (base / "unowned" / "young").mkdir(parents=True)
    (base / "unowned" / "ancient").mkdir(parents=True)
    long_ago = time.time() - scratch.UNOWNED_AFTER_S - 60
    os.utime(base / "unowned" / "ancient", (long_ago, long_ago))
    os.utime(base / "old", (long_ago, long_ago))  # old enough for its emptied folder to go too

    removed = scratch.sweep(base)
    assert sorted(str(p.relative_to(base)) for p in removed) == [
        "old", "old/w0", "old/w1", "unowned/ancient"]
    assert sorted(str(p.relative_to(base)) for p in base.glob("*/*")) == [
        "elsewhere/w0", "live/w0", "unowned/young"]


# -- real drivers -----------------------------------------------------------------------------

@pytest.fixture()
def short_tmp() -> Iterator[Path]:
    """TMPDIR for a driver and its Ray instance: Ray puts its sockets under it, and a socket's
    path must stay under 108 bytes, which pytest's tmp_path can exceed."""
    path = Path(tempfile.mkdtemp(prefix="st-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture()
def drivers(short_tmp: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """The drivers a test starts; one a failed test left running is killed (its reaper ends
    its Ray instance) before its TMPDIR goes."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for driver in started:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    wait_until(lambda: not session_processes(session_dir(short_tmp)), 30, "the driver's Ray gone")


def user_env(tmp: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(HOME=str(home), TMPDIR=str(tmp))
    return env


def quadratic_config(tmp_path: Path, budget_s: int) -> Path:
    """quadratic with trials of `budget_s`: a trial seen starting is still running when signalled."""
    text = (ROOT / "configs" / "quadratic.yaml").read_text()
    text = text.replace("repo: examples/quadratic", f"repo: {ROOT / 'examples' / 'quadratic'}")
    text = text.replace("budget_s: 1", f"budget_s: {budget_s}")
    assert str(ROOT) in text and f"budget_s: {budget_s}" in text
    path = tmp_path / "quadratic_slow.yaml"
    path.write_text(text)
    return path


def start_driver(tmp_path: Path, env: dict[str, str], drivers: list[subprocess.Popen[str]],
                 *extra: str, budget_s: int = 1) -> tuple[subprocess.Popen[str], Path]:
    run_dir = tmp_path / "run"
    args = ["run", str(quadratic_config(tmp_path, budget_s)), "--workers", "2", "--max-trials", "200",
            "--run-dir", str(run_dir), "--no-progress", *extra]
    driver = subprocess.Popen([*SWARM, *args], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True)
    drivers.append(driver)
    return driver, run_dir


def events(run_dir: Path) -> list[dict]:
    path = run_dir / "ledger.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.endswith("}")]


def finished(run_dir: Path) -> dict[str, str]:
    """trial -> status"""
    return {e["trial"]: e["status"] for e in events(run_dir) if e["event"] == "trial_finished"}


def started(run_dir: Path) -> list[str]:
    return [e["trial"] for e in events(run_dir) if e["event"] == "trial_started"]


def wait_until(check: Callable[[], object], timeout: float, what: str,
               driver: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if driver is not None and driver.poll() is not None:
            raise AssertionError(f"the driver ended before {what}: {driver.communicate()[0]}")
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def a_fresh_trial(run_dir: Path, driver: subprocess.Popen[str]) -> str:
    """Waits for a trial to start (polling every 50 ms, so it has just started); returns its id."""
    fresh: list[str] = []
    wait_until(lambda: fresh.extend(started(run_dir)) or fresh, 120, "a trial", driver)
    return fresh[0]


def session_dir(tmp: Path) -> str:
    return str((tmp / "ray" / "session_latest").resolve())


def leftover_scratch(tmp: Path) -> list[str]:
    base = tmp / "swarm-workers"
    return sorted(str(p.relative_to(base)) for p in base.glob("*")) if base.exists() else []


@pytest.mark.ray
def test_sigterm_finishes_the_trials_in_flight_and_exits_130(tmp_path, short_tmp, drivers):
    env = user_env(short_tmp, tmp_path / "home")
    # What a dead worker of an earlier session left, and a folder whose owner (this test) lives.
    stale, live = short_tmp / "swarm-workers" / "old-session" / "w0", short_tmp / "swarm-workers" / "live" / "w0"
    for folder, pid in ((stale, 2**22 + 1), (live, os.getpid())):  # 2**22 + 1: above pid_max
        folder.mkdir(parents=True)
        owner = scratch.Owner(scratch.here(), pid, psutil.Process().create_time())
        (folder / scratch.OWNER_FILE).write_text(json.dumps(owner.__dict__))
    driver, run_dir = start_driver(tmp_path, env, drivers)
    trial = a_fresh_trial(run_dir, driver)
    assert not stale.exists() and live.exists()  # swept by the workers as they started
    driver.send_signal(signal.SIGTERM)
    output = driver.communicate(timeout=90)[0]

    assert driver.returncode == 130, output
    assert "SIGTERM received" not in output and "Traceback" not in output, output
    assert "stop requested" in output
    statuses = finished(run_dir)
    assert statuses[trial] != "lost"  # it was running when SIGTERM came, and it finished
    assert sorted(statuses) == sorted(started(run_dir)) and "lost" not in statuses.values()
    assert "SIGTERM: no new work" in (run_dir / "swarm.log").read_text()
    wait_until(lambda: leftover_scratch(short_tmp) == ["live"], 30, "the session's scratch gone")
    wait_until(lambda: not session_processes(session_dir(short_tmp)), 30, "Ray's processes gone")


@pytest.mark.ray
def test_a_second_signal_abandons_the_trials_in_flight_as_lost(tmp_path, head_env, head_tmp, drivers):
    env, address = head_env  # the head of the module: this test need not pay for a Ray start
    # 6 s trials: on a loaded machine the first stop may take seconds to be seen
    driver, run_dir = start_driver(tmp_path, env, drivers, "--address", address, budget_s=6)
    trial = a_fresh_trial(run_dir, driver)
    driver.send_signal(signal.SIGTERM)
    wait_until(lambda: "SIGTERM: no new work" in (run_dir / "swarm.log").read_text(), 30,
               "the first stop", driver)
    assert trial not in finished(run_dir), "the machine is too slow for this test's 6 s trials"
    driver.send_signal(signal.SIGINT)  # either signal, second, abandons
    output = driver.communicate(timeout=60)[0]

    assert driver.returncode == 130, output
    assert finished(run_dir)[trial] == "lost", output
    assert sorted(finished(run_dir)) == sorted(started(run_dir))  # nothing left unrecorded
    assert "abandoned at the second stop signal (SIGTERM, Ctrl-C)" in (run_dir / "swarm.log").read_text()
    # The killed workers ran no cleanup of their own: their watchdogs removed their clones.
    wait_until(lambda: leftover_scratch(head_tmp) == [], 60, "the killed workers' scratch gone")


@pytest.mark.ray
def test_kill_9_of_the_driver_leaves_nothing_of_its_ray_instance(tmp_path, short_tmp, other_head, drivers):
    driver, run_dir = start_driver(tmp_path, user_env(short_tmp, tmp_path / "home"), drivers)
    a_fresh_trial(run_dir, driver)
    session = session_dir(short_tmp)
    ours = session_processes(session)
    tree = psutil.Process(driver.pid).children(recursive=True) + ours
    assert len(ours) >= 6
    assert any(p.cmdline()[0].startswith("ray::") for p in ours)  # renamed: known by their open logs
    driver.kill()
    driver.wait()

    wait_until(lambda: not [p for p in tree if p.is_running()], 30, "every process the driver started gone")
    assert session_processes(session) == []
    assert leftover_scratch(short_tmp) == []  # the reaper swept what the killed workers left
    assert "driver gone: ended" in (Path(session) / "logs" / "swarm_reaper.log").read_text()
    assert [p.name() for p in other_head if not p.is_running()] == []  # another Ray instance: untouched


# `make test` covers this through tests/test_jobs.py (`ray job stop` sends SIGTERM to an
# `--address` driver); here on demand, with -m slow, to keep the default run under 10 minutes.
@pytest.mark.slow
@pytest.mark.ray
def test_sigterm_with_address_finishes_trials_and_leaves_the_cluster_up(tmp_path, other_head, head_env,
                                                                       drivers):
    env, address = head_env
    driver, run_dir = start_driver(tmp_path, env, drivers, "--address", address)
    trial = a_fresh_trial(run_dir, driver)
    driver.send_signal(signal.SIGTERM)
    output = driver.communicate(timeout=90)[0]

    assert driver.returncode == 130, output
    assert finished(run_dir)[trial] != "lost"
    assert sorted(finished(run_dir)) == sorted(started(run_dir))
    assert [p.name() for p in other_head if not p.is_running()] == []  # not the driver's to end


# -- a head started with `ray start`, which no driver of these tests owns ---------------------

@pytest.fixture(scope="module")
def head_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sh-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def head_env(head_tmp: Path) -> Iterator[tuple[dict[str, str], str]]:
    env = user_env(head_tmp, head_tmp / "home")
    port = free_port()
    ray = str(Path(sys.executable).with_name("ray"))
    subprocess.run([ray, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                    "--disable-usage-stats"], env=env, check=True, capture_output=True, timeout=120)
    try:
        yield env, f"127.0.0.1:{port}"
    finally:
        end_session(session_dir(head_tmp))  # never `ray stop`: it ends every instance of the user


@pytest.fixture(scope="module")
def other_head(head_env: tuple[dict[str, str], str], head_tmp: Path) -> list[psutil.Process]:
    """The other instance's daemons: its GCS and raylet. Not every process of its session, since
    Ray itself ends the idle workers it prestarted whenever it likes (seen under CI's load)."""
    daemons = [p for p in session_processes(session_dir(head_tmp)) if p.name() in ("gcs_server", "raylet")]
    assert sorted(p.name() for p in daemons) == ["gcs_server", "raylet"]
    return daemons


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
