"""Status tells the truth, and the ledger speaks up, with real processes: a `swarm run` driver
(and the local Ray instance it started) killed with SIGKILL mid-trial, the same run resumed to a
clean end with a torn last line, and the CLI's output off a terminal.

One killed run is shared by the module (about 40 s in all: two Ray starts). The files-only
cases (a heartbeat of a given age, rounding, the JSON keys) are tests/test_status_view.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from coordinator.liveness import DRIVER_GONE_AFTER_S, HEARTBEAT
from swarm.shell.cli import main
from tests.test_status_view import KEYS, NESTED, WORKER_KEYS, clock, keys_of

__all__: list[str] = []

ROOT = Path(__file__).resolve().parents[1]
SWARM = [sys.executable, "-m", "swarm.shell.cli"]
CONFIG = "configs/quadratic.yaml"
# Trials of 4 s, not 1: the trial in flight when the driver is killed must still be in flight
# when its Ray instance is gone, however loaded the machine is.
LONGER = ("--set", "target.budget_s=4")
WAIT_S = 120.0


def ledger_of(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "ledger.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]  # a torn tail left out


def in_flight(events: list[dict[str, Any]]) -> list[str]:
    done = {e["trial"] for e in events if e["event"] == "trial_finished"}
    return [e["trial"] for e in events if e["event"] == "trial_started" and e["trial"] not in done]


@dataclass
class Runs:
    killed: Path  # its driver killed with SIGKILL mid-trial; left as the kill left it
    beat: float  # its heartbeat's mtime right after the kill
    unfinished: list[str]  # its trials in flight at the kill
    driver_pid: int
    resumed: Path  # a copy of it, a torn trial_finished appended, resumed to a clean end
    torn: str  # the trial whose report was torn
    torn_bytes: int
    resume: subprocess.CompletedProcess[str]  # stdout is a pipe: not a terminal
    max_trials: int


def swarm_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    return env


def kill_mid_trial(driver: subprocess.Popen[str], run_dir: Path) -> None:
    """SIGKILL once a trial finished and one is in flight (the driver goes, and its local Ray
    instance with it)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and driver.poll() is None:
        events = ledger_of(run_dir) if (run_dir / "ledger.jsonl").exists() else []
        if any(e["event"] == "trial_finished" for e in events) and in_flight(events):
            driver.send_signal(signal.SIGKILL)
            driver.wait(30)
            return
        time.sleep(0.1)
    driver.kill()
    pytest.fail(f"no trial in flight within {WAIT_S} s (driver exit {driver.poll()})")


def wait_until_gone(run_dir: Path, driver_pid: int) -> None:
    """Until the killed driver's Ray processes and its coordinator are gone (at most WAIT_S;
    the first test below says so if they never go)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            if not leftovers(driver_pid) and not coordinator_alive(run_dir):
                return
        except psutil.Error:  # one went while it was being looked at
            pass
        time.sleep(0.2)


def coordinator_alive(run_dir: Path) -> bool:
    found = re.findall(r"pid (\d+)", (run_dir / ".coordinator.lock").read_text())
    if not found or not psutil.pid_exists(int(found[0])):
        return False
    try:
        return psutil.Process(int(found[0])).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def leftovers(driver_pid: int) -> list[psutil.Process]:
    """Processes of the Ray session the killed driver started (its session dir ends in its pid)."""
    mark = re.compile(rf"session_[\d_-]+_{driver_pid}\b")
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if mark.search(" ".join(process.info["cmdline"] or [])):
            found.append(process)
            found.extend(process.children(recursive=True))
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, ray_home: Path) -> Iterator[Runs]:
    tmp = tmp_path_factory.mktemp("status-truth")
    killed, resumed = tmp / "killed", tmp / "resumed"
    env = swarm_env(ray_home)
    with open(tmp / "killed.out", "w") as out:
        driver = subprocess.Popen([*SWARM, "run", CONFIG, *LONGER, "--workers", "2", "--max-trials", "200",
                                   "--run-dir", str(killed)], cwd=ROOT, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, text=True)
    try:
        kill_mid_trial(driver, killed)
        # Under load the coordinator may still run calls the driver queued before it died (one
        # beats the heartbeat) or record a worker's report: take the run as the kill left it
        # once what the kill takes with it is gone.
        wait_until_gone(killed, driver.pid)
        beat = (killed / HEARTBEAT).stat().st_mtime
        events = ledger_of(killed)
        unfinished = in_flight(events)
        shutil.copytree(killed, resumed)
        # what a crash mid-append of a report leaves: its first bytes, no newline
        torn = unfinished[0]
        fragment = f'{{"ts":{time.time():.3f},"event":"trial_finished","trial":"{torn}","sta'
        with open(resumed / "ledger.jsonl", "a") as ledger:
            ledger.write(fragment)
        evaluations = sum(e["event"] == "trial_started" for e in events) - len(unfinished)
        max_trials = evaluations + 1
        resume = subprocess.run([*SWARM, "run", CONFIG, *LONGER, "--workers", "2", "--max-trials", str(max_trials),
                                 "--run-dir", str(resumed), "--resume"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=WAIT_S)
        yield Runs(killed, beat, unfinished, driver.pid, resumed, torn, len(fragment), resume, max_trials)
    finally:
        for process in leftovers(driver.pid):  # the driver's Ray instance should be gone already
            process.kill()


def status_of(run_dir: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    """`swarm status RUN_DIR` in this process, its stdout a pipe (as in a script)."""
    capsys.readouterr()
    assert main(["status", str(run_dir), *flags]) == 0
    return capsys.readouterr().out


# -- a driver killed outright ----------------------------------------------------------------

def test_the_killed_drivers_ray_instance_and_coordinator_went_with_it(runs: Runs) -> None:
    assert not coordinator_alive(runs.killed)
    assert [p.info["cmdline"][:1] for p in leftovers(runs.driver_pid)] == []


def test_a_run_whose_driver_was_killed_is_said_gone_and_runs_nothing(
        runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    time.sleep(max(0.0, runs.beat + DRIVER_GONE_AFTER_S + 1 - time.time()))
    assert (runs.killed / HEARTBEAT).stat().st_mtime == runs.beat  # nothing beats: all of it died
    text = status_of(runs.killed, capsys)
    assert f"driver     gone since {clock(runs.beat)} (" in text
    done = len({e["trial"] for e in ledger_of(runs.killed) if e["event"] == "trial_finished"})
    assert (f"trials     {done} done, 0 running ({len(runs.unfinished)} unfinished: recorded lost "
            "when the run is resumed)") in text
    assert " running" not in text.split("trials     ")[1].split("\n", 1)[1]  # nor in the workers
    found = json.loads(status_of(runs.killed, capsys, "--json"))
    assert found["driver"] == {"state": "gone", "since": runs.beat, "reason": ""}
    assert (found["trials"]["running"], found["trials"]["unfinished"]) == (0, len(runs.unfinished))
    assert {w["doing"] for w in found["workers"]} == {"gone with the driver"}


# -- resumed: a torn report, then a clean end ------------------------------------------------

def test_a_torn_report_is_said_on_resume_and_recorded_as_what_it_was(runs: Runs) -> None:
    assert runs.resume.returncode == 0, runs.resume.stderr[-2000:]
    warning = [line for line in runs.resume.stderr.splitlines() if line.startswith("swarm: warning:")]
    ledger = runs.resumed / "ledger.jsonl"
    assert warning == [
        f"swarm: warning: {ledger}:{len(ledger_of(runs.killed)) + 1}: the last line is torn "
        f"({runs.torn_bytes} bytes of a trial_finished event of trial {runs.torn}): the run stopped mid-write; it "
        f"was never acknowledged and is dropped; trial {runs.torn} reported, but its result was not "
        "recorded: it is recorded lost, its log was not written"]  # the test wrote it, no coordinator
    lost = {e["trial"]: e["reason"] for e in ledger_of(runs.resumed)
            if e["event"] == "trial_finished" and e["trial"] in runs.unfinished}
    # this torn line was written by the test, not by a coordinator: no log was written first
    assert lost == {t: "it reported, but the run stopped before its result was recorded; its log was not "
                    "written" if t == runs.torn else "its session ended before it reported"
                    for t in runs.unfinished}
    assert "Traceback" not in runs.resume.stderr


def test_a_clean_end_is_in_the_ledger_and_status_says_stopped(
        runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    last = ledger_of(runs.resumed)[-1]
    assert last["event"] == "session_ended"
    assert last["reason"].startswith(f"max_trials reached ({runs.max_trials})")
    text = status_of(runs.resumed, capsys)
    assert f"driver     stopped at {clock(last['ts'])} (" in text
    assert f"): {last['reason']}\n" in text
    assert ", 0 running," in text


def test_status_json_holds_the_ledgers_figures_under_the_documented_keys(
        runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    found = json.loads(status_of(runs.resumed, capsys, "--json"))
    assert keys_of(found) == (KEYS, NESTED, WORKER_KEYS)
    events = ledger_of(runs.resumed)
    finished = {e["trial"]: e for e in events if e["event"] == "trial_finished"}  # the last word on each
    started = {e["trial"]: e for e in events if e["event"] == "trial_started"}
    repo = runs.resumed / "repo"
    best = subprocess.run(["git", "-C", str(repo), "rev-parse", "swarm/best", "swarm/best^{tree}"],
                          capture_output=True, text=True, check=True).stdout.split()
    runs_of_best = [f["metric"] for t, f in finished.items()
                    if f["status"] == "ok" and started[t]["tree"] == best[1]]
    statuses = Counter(line.split("\t")[3] for line in (runs.resumed / "results.tsv").read_text().splitlines()[1:])
    end = events[-1]
    assert found["best"]["commit"] == best[0]
    assert found["best"]["runs"] == len(runs_of_best)
    assert found["best"]["mean"] == pytest.approx(statistics.fmean(runs_of_best))
    assert found["trials"]["done"] == len(finished)
    assert found["trials"]["by_status"] == dict(sorted(statuses.items()))
    assert found["driver"] == {"state": "ended", "since": end["ts"], "reason": end["reason"]}
    assert (found["run"], found["metric"], found["direction"]) == ("quadratic", "score", "minimize")
    assert (found["cost_usd"], found["tokens"]) == (0.0, 0)
    assert {w["worker"] for w in found["workers"]} == {e["worker"] for e in started.values()
                                                       if e["session"] == end["session"]}


def test_off_a_terminal_the_output_is_plain_and_rounded(runs: Runs) -> None:
    lines = runs.resume.stdout.splitlines()
    progress = [line for line in lines if re.match(r"trials \d", line)]  # not the summary's row
    assert progress, runs.resume.stdout
    for line in progress:
        assert re.match(r"trials \d+ done, \d+ running; best (-|[\d.e+-]+) over \d+ runs, from "
                        r"(the target as given|trial \d{5})(;|$)", line), line
    for number in re.findall(r"\d+\.\d+", runs.resume.stdout):  # no raw float (6.6946200000000005)
        assert len(number.replace(".", "").lstrip("0")) <= 6, number
    assert "None" not in runs.resume.stdout
    best = next(line for line in lines if line.startswith("best "))
    assert "better than the baseline" in best and best.endswith(" runs)")  # one line, not wrapped


# -- a bad line: one error, from status, report and --resume alike; nothing written ------------

@pytest.mark.parametrize(("line", "said"), [
    ('{"ts":1,"event":"bogus"}', "unknown event kind 'bogus'; a ledger holds only run_started, "
     "session_started, session_ended, trial_started, trial_finished, verdict, proposal_failed"),
    ('{"ts":1,"event":"trial_finished","trial":"00001","status":"ok","metric":"high"}',
     "a trial_finished event whose 'metric' is 'high': Input should be a valid number, unable to "
     "parse string as a number"),
    ('[{"event":"verdict"}]', "not an event: expected a JSON object"),
    ('{"ts":1,"event":"verdict","trial":"99999","verdict":"accepted","best_commit":"0"}',
     "a verdict event for trial '99999', but no trial_started event before it starts that trial"),
], ids=["unknown-kind", "wrong-field", "json-array", "unknown-trial"])
def test_a_bad_line_is_one_error_naming_it_and_resume_writes_nothing(
        runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, said: str) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(runs.resumed, run_dir, ignore=shutil.ignore_patterns("repo"))
    ledger = run_dir / "ledger.jsonl"
    number = len(ledger.read_text().splitlines()) + 2
    with open(ledger, "a") as file:
        file.write("\n" + line + "\n" + ledger.read_text().splitlines()[-1] + "\n")  # a blank line is fine
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    expected = f"swarm: error: {ledger}:{number}: {said}; the ledger is append-only: restore it from a copy\n"
    for command in (["status", str(run_dir)], ["report", str(run_dir)],
                    ["run", str(ROOT / CONFIG), "--run-dir", str(run_dir), "--resume"]):
        capsys.readouterr()
        assert main(command) == 2, command
        assert capsys.readouterr() == ("", expected), command
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
