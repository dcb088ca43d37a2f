"""The cluster path as README.md's "On a cluster" section gives it, on a real head.

One `ray start --head` with the dashboard (the Jobs API) and token authentication, as
cluster.yaml starts it, in a temporary HOME and temp dir of its own, stopped whole at the
end. A search is submitted with `ray job submit`, watched with `swarm status --address`,
stopped with `ray job stop` and resumed; a killed driver's run is refused and then taken over;
`--address` to nothing, or to the head without its token, is one line within seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from swarm.core.events import SessionStarted, TrialFinished, TrialStarted
from swarm.core.ledger import read_events

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SWARM = os.path.relpath(BIN / "swarm", ROOT)  # `.venv/bin/swarm`, as the README has it
RAY = str(BIN / "ray")
# A trial in flight may take its timeout to finish after `ray job stop`; cluster.yaml gives the
# head more, for GPU trials
STOP_WAIT_S = 60


@dataclass
class Head:
    gcs: str  # HOST:PORT, for --address
    dashboard: str  # http://HOST:PORT, for `ray job`
    token: str
    user: dict[str, str]  # a user's shell on the head: the token in ~/.ray, RAY_AUTH_MODE unset
    temp: Path

    def job_env(self) -> dict[str, str]:
        return {**self.user, "RAY_AUTH_MODE": "token"}  # `ray job` finds no token without it


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
    env["HOME"] = str(home)
    return env


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Head]:
    home = tmp_path_factory.mktemp("head-home")
    # Short: Ray's socket paths under it must stay within the 107 bytes a socket path may have
    temp = Path(tempfile.mkdtemp(prefix="rayjobs-", dir="/tmp"))
    user = clean_env(home)
    subprocess.run([RAY, "get-auth-token", "--generate"], env=user, check=True, capture_output=True)
    gcs, dashboard, client, agent = free_ports(4)
    # As cluster.yaml starts it: token mode, in the checkout (where jobs then start)
    started = subprocess.run(
        [RAY, "start", "--head", f"--port={gcs}", f"--dashboard-port={dashboard}", "--num-cpus=2",
         "--num-gpus=0", f"--temp-dir={temp}", f"--ray-client-server-port={client}",
         f"--dashboard-agent-listen-port={agent}", "--disable-usage-stats"],
        cwd=ROOT, env={**user, "RAY_AUTH_MODE": "token", "RAY_JOB_STOP_WAIT_TIME_S": str(STOP_WAIT_S)},
        capture_output=True, text=True, timeout=180)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield Head(f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dashboard}",
                   (home / ".ray" / "auth_token").read_text().strip(), user, temp)
    finally:
        stop_head(temp, client)
        shutil.rmtree(temp, ignore_errors=True)


def stop_head(temp: Path, client_port: int) -> None:
    """`ray stop` for this head alone: every process that names its temp dir (or is its client
    server), and everything they started."""
    roots = []
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if str(temp) in line or ("ray.util.client.server" in line and f"--port={client_port}" in line):
            roots.append(process)
    everything = {p.pid: p for root in roots for p in [root, *_children(root)]}
    for process in everything.values():
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(list(everything.values()), timeout=5)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def quick_config(tmp_path: Path) -> Path:
    """configs/quadratic.yaml with 0.3 s trials, its repo named by absolute path."""
    text = (ROOT / "configs" / "quadratic.yaml").read_text()
    text = text.replace("repo: examples/quadratic", f"repo: {ROOT / 'examples' / 'quadratic'}")
    text = text.replace("budget_s: 1\n", "budget_s: 0.3\n")
    path = tmp_path / "quick.yaml"
    path.write_text(text)
    return path


def swarm(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SWARM, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def ray_job(head: Head, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RAY, "job", *args], cwd=ROOT, env=head.job_env(), capture_output=True,
                          text=True, timeout=timeout)


def trials(run_dir: Path) -> tuple[set[str], set[str], list[TrialFinished]]:
    """Started trial ids, finished trial ids, and the finished events, from the ledger."""
    path = run_dir / "ledger.jsonl"
    events = list(read_events(path)) if path.exists() else []
    started = {e.trial for e in events if isinstance(e, TrialStarted)}
    finished = [e for e in events if isinstance(e, TrialFinished)]
    return started, {e.trial for e in finished}, finished


def sessions(run_dir: Path) -> int:
    return sum(isinstance(e, SessionStarted) for e in read_events(run_dir / "ledger.jsonl"))


def watch(head: Head, run_dir: Path, done: int, timeout_s: float = 120) -> dict:
    """`swarm status RUN_DIR --address` until it shows `done` trials done (asked once the ledger
    has them: each ask is a process that joins the cluster, seconds on a busy machine)."""
    deadline, last = time.monotonic() + timeout_s, None
    while len(trials(run_dir)[1]) < done and time.monotonic() < deadline:
        time.sleep(0.2)
    while time.monotonic() < deadline:
        last = swarm("status", str(run_dir), "--address", head.gcs, "--json", env=head.user, timeout=60)
        if last.returncode == 0 and json.loads(last.stdout)["trials"]["done"] >= done:
            return dict(json.loads(last.stdout))
        time.sleep(1)
    raise AssertionError(f"status never showed {done} trials done: {last}")


def test_a_submitted_search_is_watched_stopped_by_ray_job_stop_and_resumed(head: Head, tmp_path: Path) -> None:
    config, run_dir, job = quick_config(tmp_path), tmp_path / "run", f"swarm-{uuid.uuid4().hex[:8]}"
    run = ["run", str(config), "--address", "auto", "--run-dir", str(run_dir), "--workers", "2",
           "--no-progress"]
    submitted = ray_job(head, "submit", "--address", head.dashboard, "--submission-id", job,
                        "--no-wait", "--", SWARM, *run, "--max-trials", "10000")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    try:
        status = watch(head, run_dir, done=2)
        assert status["trials"]["done"] >= 2 and len(status["workers"]) == 2, status
        # and from anywhere the dashboard is reached: status as a job of its own, on the head
        shown = ray_job(head, "submit", "--address", head.dashboard, "--", SWARM, "status", str(run_dir),
                        "--address", "auto")
        assert shown.returncode == 0 and "quadratic" in shown.stdout and "w1" in shown.stdout, shown.stdout
    finally:
        stopped = ray_job(head, "stop", "--address", head.dashboard, job, timeout=STOP_WAIT_S + 60)
    # `ray job stop` waits until the driver has exited (or was killed at RAY_JOB_STOP_WAIT_TIME_S)
    assert stopped.returncode == 0 and f"Job '{job}' was stopped" in stopped.stdout, stopped.stdout
    started, finished, _ = trials(run_dir)
    # every trial in flight finished, or is recorded lost
    assert started and started == finished, ray_job(head, "logs", "--address", head.dashboard, job).stdout

    # --resume as a job too, waited for: `ray job submit` exits 0 only if the job succeeded
    more = len(finished) + 4
    resumed = ray_job(head, "submit", "--address", head.dashboard, "--", SWARM, *run, "--resume",
                      "--max-trials", str(more))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    started, ended, events = trials(run_dir)
    assert sessions(run_dir) == 2 and len(events) >= more and started == ended


def test_a_killed_driver_s_run_is_refused_saying_when_it_can_be_taken_over(head: Head, tmp_path: Path) -> None:
    config, run_dir = quick_config(tmp_path), tmp_path / "run"
    run = ["run", str(config), "--address", head.gcs, "--run-dir", str(run_dir), "--workers", "1",
           "--no-progress"]
    driver = subprocess.Popen([SWARM, *run, "--max-trials", "10000"], cwd=ROOT, env=head.user,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not trials(run_dir)[1]:
            assert time.monotonic() < deadline and driver.poll() is None, "the driver never got going"
            time.sleep(0.2)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    killed_at = time.monotonic()  # its last word came before this
    refused = swarm(*run, "--resume", "--max-trials", "10000", env=head.user)
    errors = [line for line in refused.stderr.splitlines() if line.startswith("swarm: error:")]
    assert refused.returncode == 2 and errors == refused.stderr.splitlines()[-1:], refused.stderr
    said = re.search(r"already being run by another driver on this cluster, which last spoke (\d+) s ago; "
                     r"if that driver was killed, its coordinator is taken over once it has been silent "
                     r"30 s: run this command again in (\d+) s$", refused.stderr.strip())
    assert said, refused.stderr
    silence_s, wait_s = int(said.group(1)), int(said.group(2))
    assert silence_s <= time.monotonic() - killed_at + 2 and 1 <= wait_s <= 30 - silence_s + 1, refused.stderr

    time.sleep(wait_s + 1)  # then, as it said, the same command again
    more = len(trials(run_dir)[1]) + 2
    taken = swarm(*run, "--resume", "--max-trials", str(more), env=head.user)
    assert taken.returncode == 0, taken.stdout[-2000:] + taken.stderr[-2000:]
    started, finished, events = trials(run_dir)
    assert started == finished and len(events) >= more
    assert sessions(run_dir) == 2


def test_address_to_nothing_is_one_line_within_seconds(tmp_path: Path) -> None:
    [port] = free_ports(1)  # closed again: nothing listens there
    env = clean_env(tmp_path / "home")
    for args in (["status", str(tmp_path / "run"), "--address", f"127.0.0.1:{port}"],
                 ["run", str(quick_config(tmp_path)), "--address", f"127.0.0.1:{port}",
                  "--run-dir", str(tmp_path / "run")]):
        began = time.monotonic()
        result = swarm(*args, env=env, timeout=60)
        took = time.monotonic() - began
        assert result.returncode == 2 and took < 10, (took, result.stderr)
        assert result.stderr == (f"swarm: error: no Ray head answers at 127.0.0.1:{port}: connection "
                                 "refused; start one (`ray start --head`) or check --address: auto, or "
                                 "HOST:PORT with the head's GCS port (6379 by default)\n")


def test_a_token_head_is_joined_with_the_token_at_hand_or_refused_in_one_line(head: Head, tmp_path: Path) -> None:
    nobody = clean_env(tmp_path / "empty-home")
    status = ["status", str(tmp_path / "run"), "--address", head.gcs]
    began = time.monotonic()
    without = swarm(*status, env=nobody, timeout=60)
    assert time.monotonic() - began < 10, without.stderr
    assert without.returncode == 2 and without.stderr == (
        f"swarm: error: the Ray head at {head.gcs} wants token authentication and none is here: put "
        "the cluster's token (`ray get-auth-token` on the head) in RAY_AUTH_TOKEN, in a file named by "
        "RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token\n")
    wrong = swarm(*status, env={**nobody, "RAY_AUTH_TOKEN": "0" * 64}, timeout=60)
    assert wrong.returncode == 2 and wrong.stderr == (
        f"swarm: error: the Ray head at {head.gcs} refused the token from $RAY_AUTH_TOKEN: it is not "
        "this cluster's; get the right one with `ray get-auth-token` on the head\n")
    # The right token, RAY_AUTH_MODE unset: joined (there is just no run of that name)
    began = time.monotonic()
    right = swarm(*status, env={**nobody, "RAY_AUTH_TOKEN": head.token}, timeout=60)
    assert time.monotonic() - began < 10, right.stderr
    last = right.stderr.splitlines()[-1]
    assert right.returncode == 2 and last.startswith("swarm: error: no live coordinator for "), right.stderr


def test_the_readme_gives_the_commands_this_module_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("## On a cluster"):]
    block = block[block.index("```bash"):block.index("```", block.index("```bash") + 3)]
    for command in ("export RAY_AUTH_MODE=token",
                    "ray job submit --address http://HEAD_IP:8265 --submission-id gpt --no-wait -- \\\n"
                    "    .venv/bin/swarm run configs/ml_target_gpu.yaml --address auto --run-dir "
                    "/home/ubuntu/runs/gpt\n",
                    "ray job submit --address http://HEAD_IP:8265 -- \\\n"
                    "    .venv/bin/swarm status /home/ubuntu/runs/gpt --address auto\n",
                    "ray job stop --address http://HEAD_IP:8265 gpt ",
                    "--address auto --run-dir /home/ubuntu/runs/gpt --resume\n"):
        assert command in block, command
