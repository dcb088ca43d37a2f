"""The attack suite: hostile candidates run as real trials in the real jail (no mocks), each one
contained, recorded with a clear status, and the host left as it was.

A small target in tmp_path: the editable `train.py` is the attack, `harness.py` (readonly) is the
score or the metric printer, `held.txt` is hidden. Every trial's command carries a unique marker,
so that after it no process of it may be left on the host (psutil). Fixtures under
tests/attacks/: a hidden file at an absolute path and a run directory outside /tmp and $HOME.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import psutil
import pytest

from coordinator.service import Coordinator
from coordinator.status import load_status
from swarm.core.config import SwarmConfig
from swarm.core.values import WorkerSite
from workers.cgroups import pids_group
from workers.classify import Classified, classify_trial
from workers.evaluation import Evaluator, TrialRun, jail_missing
from workers.loop import WorkerLoop
from workers.proposers.base import Proposal, ProposalContext, ProposalFailure
from workers.sandbox import SECRET_PATTERNS, scrubbed_env

if (_MISSING := jail_missing()) is not None:
    pytest.skip(f"this machine cannot make the trial jail: {_MISSING}", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "attacks"
HELD_ABS = FIXTURES / "held_abs.txt"  # hidden by absolute path, outside every covered folder
RUN_DIR_FIXTURE = FIXTURES / "rundir"  # a run directory the trial must not see (`private`)
HELD_TEXT = "held-out answer 3b9e41\n"
REAL_SCORE = 5.0
FAKE = -1000.0

HARNESS_SCORE = textwrap.dedent(f'''\
    """The trusted score: reads the hidden files, prints the only result block that counts."""
    import os
    held = open("held.txt").read() if os.path.exists("held.txt") else ""
    held_abs = open({str(HELD_ABS)!r}).read()
    print("---")
    print("score: {REAL_SCORE}")
    print("held_ok:", int("3b9e41" in held))
    print("held_abs_ok:", int("8c1f2e" in held_abs))
''')

HARNESS_REPORT = textwrap.dedent(f'''\
    """The metric printer a run without `score` imports."""
    def report(**extra):
        print("---")
        print("score: {REAL_SCORE}")
        for key, value in extra.items():
            print(f"{{key}}: {{value}}")
''')


@dataclass
class Target:
    base: Path  # the folder of every worker's clone (w0, w1)
    checkout: Path  # base/w0/repo
    marker: str  # in every trial command's argv: finds leftover processes on the host

    @property
    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.checkout)) for p in self.checkout.rglob("*") if p.is_file())

    def hashes(self) -> dict[str, str]:
        return {f: _sha(self.checkout / f) for f in self.files}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def target(tmp_path: Path) -> Target:
    checkout = tmp_path / "w0" / "repo"
    checkout.mkdir(parents=True)
    (checkout / "harness.py").write_text(HARNESS_REPORT)
    (checkout / "held.txt").write_text(HELD_TEXT)
    return Target(tmp_path, checkout, f"attack-{uuid.uuid4().hex[:12]}")


def config(target: Target, *, score: bool = False, guard: bool = False, timeout_s: float = 30,
           budget_s: float = 1, network: tuple[str, ...] = (), max_log_bytes: int = 2_000_000,
           **limits: Any) -> SwarmConfig:
    """The target's config: with `score`, harness.py is the score; with `guard`, guard.py
    (readonly too) the guard. Small limits; `limits` overrides them."""
    if score:
        (target.checkout / "harness.py").write_text(HARNESS_SCORE)
    return SwarmConfig.model_validate({
        "name": "attacks",
        "target": {"repo": str(target.checkout), "editable": ["train.py"],
                   "readonly": ["harness.py", *(["guard.py"] if guard else [])],
                   "run": f"python train.py {target.marker}", "metric": {"name": "score"},
                   "budget_s": budget_s, "timeout_s": timeout_s,
                   "score": f"python harness.py {target.marker}" if score else None,
                   "guard": f"python guard.py {target.marker}" if guard else None,
                   "hidden": ["held*.txt", str(HELD_ABS)], "max_log_bytes": max_log_bytes},
        "sandbox": {"network": list(network),
                    "limits": {"memory_mb": 300, "processes": 64, "scratch_mb": 32, **limits}},
    })


def base_env() -> dict[str, str]:
    return {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}


def leftovers(marker: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or ())
        if marker in cmdline and proc.pid != os.getpid():
            found.append(f"{proc.pid}: {cmdline}")
    return found


def attack(target: Target, cfg: SwarmConfig, train: str, *, private: tuple[str, ...] = (),
           env: dict[str, str] | None = None) -> tuple[TrialRun, Classified]:
    """Runs train.py as one trial (run, then score if set); checks the host keeps none of its
    processes and its checkout is as it was."""
    (target.checkout / "train.py").write_text(textwrap.dedent(train))
    before = target.hashes()
    evaluator = Evaluator(cfg, target.checkout, target.checkout.parent, private)
    trial = evaluator.evaluate("00001", env or base_env(), target.files)
    classified = classify_trial(trial, "score")
    deadline = time.monotonic() + 2
    while (left := leftovers(target.marker)) and time.monotonic() < deadline:
        time.sleep(0.05)  # the jail's PID 1 is dead by now; give the kernel a moment to reap
    assert not left, f"processes of the trial outlived it on the host: {left}"
    assert target.hashes() == before, "the trial changed its host checkout"
    return trial, classified


# -- the readonly harness -------------------------------------------------------------------


def test_editing_a_readonly_file_fails_and_the_trial_still_classifies(target: Target) -> None:
    trial, (status, metric, _, _) = attack(target, config(target), '''\
        import os, harness
        for how in ("append", "replace", "remove", "chmod"):
            try:
                if how == "append":
                    open("harness.py", "a").write("REAL = -1000\\n")
                elif how == "replace":
                    open("new.py", "w").write("print('---'); print('score: -1000')\\n")
                    os.replace("new.py", "harness.py")
                elif how == "remove":
                    os.remove("harness.py")
                else:
                    os.chmod("harness.py", 0o777)
                print(how, "WROTE")
            except OSError as exc:
                print(how, "refused:", exc.strerror)
        harness.report()
    ''')
    log = trial.log()
    assert "append refused: Read-only file system" in log
    assert "WROTE" not in log, log
    assert (status, metric) == ("ok", REAL_SCORE)
    assert (target.checkout / "harness.py").read_text() == HARNESS_REPORT


# -- fake result blocks ------------------------------------------------------------------------

FAKE_BLOCKS = f'''\
    import atexit, subprocess, sys
    print("---\\nscore: {FAKE}", flush=True)  # at the start
    atexit.register(lambda: print("---\\nscore: {FAKE}", flush=True))  # at exit
    subprocess.Popen([sys.executable, "-c",
                      "import time; time.sleep(1.5); print('---'); print('score: {FAKE}'); print('CHILD-SPOKE')",
                      "{{marker}}"], start_new_session=True)
    print("train.py done")
'''


def test_fake_result_blocks_never_become_the_metric_with_score_set(target: Target) -> None:
    cfg = config(target, score=True)
    trial, (status, metric, metrics, reason) = attack(target, cfg, FAKE_BLOCKS.replace("{marker}", target.marker))
    assert (status, metric, reason) == ("ok", REAL_SCORE, "")
    assert metrics["held_ok"] == metrics["held_abs_ok"] == 1.0
    assert trial.run is not None and f"score: {FAKE}" in trial.run.log  # it did print them
    assert "CHILD-SPOKE" not in trial.log()  # the child was killed when train.py exited
    time.sleep(1.6)  # past the child's sleep: nothing of it prints anywhere now
    assert not leftovers(target.marker)


def test_a_child_that_outlives_the_run_never_prints_its_block(target: Target) -> None:
    train = '''\
        import subprocess, sys, harness
        subprocess.Popen([sys.executable, "-c",
                          "import time; time.sleep(1.5); print('---'); print('score: -1000'); print('CHILD-SPOKE')",
                          "{marker}"], start_new_session=True)
        harness.report()
    '''.replace("{marker}", target.marker)
    trial, (status, metric, _, _) = attack(target, config(target), train)
    assert (status, metric) == ("ok", REAL_SCORE)
    assert "CHILD-SPOKE" not in trial.log() and "-1000" not in trial.log()


# -- secrets in the environment -----------------------------------------------------------------


def test_the_environment_holds_no_host_secret(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {"FAKE_API_KEY": "sk-fake-4242", "GH_TOKEN": "ghp-fake-4242", "DB_PASSWORD": "pw-fake-4242",
               "AWS_SECRET_ACCESS_KEY": "aws-fake-4242", "RAY_ADDRESS": "10.0.0.1:6379"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    env = scrubbed_env(os.environ, base_env())
    trial, (status, _, _, _) = attack(target, config(target), '''\
        import json, os, harness
        print("ENV", json.dumps(dict(os.environ)))
        for pid in os.listdir("/proc"):  # every process this trial can see
            if pid.isdigit():
                try:
                    print("PROC", pid, open(f"/proc/{pid}/environ", "rb").read().replace(b"\\0", b" ").decode())
                except OSError as exc:
                    print("PROC", pid, exc.strerror)
        harness.report()
    ''', env=env)
    assert status == "ok"
    log = trial.log()
    seen = json.loads(next(line[4:] for line in log.splitlines() if line.startswith("ENV ")))
    leaked = [k for k in seen if any(fnmatchcase(k.upper(), p.upper()) for p in SECRET_PATTERNS)]
    assert leaked == []
    assert "4242" not in log and "10.0.0.1" not in log
    assert seen["HOME"] == "/tmp/home" and seen["SWARM_ISOLATED"] == "1"


# -- hidden files -------------------------------------------------------------------------------


def test_hidden_files_are_unreadable_in_run_and_readable_in_score(target: Target) -> None:
    cfg = config(target, score=True)
    trial, (status, metric, metrics, _) = attack(target, cfg, f'''\
        import glob, os
        for path in ("held.txt", {str(target.checkout / "held.txt")!r}, {str(HELD_ABS)!r}):
            try:
                print(path, "READ", repr(open(path).read()))
            except OSError as exc:
                print(path, "refused:", exc.strerror)
        print("glob", glob.glob("held*"), os.listdir("."))
    ''')
    assert trial.run is not None
    run_log = trial.run.log
    assert "3b9e41" not in run_log and "8c1f2e" not in run_log, run_log
    assert "held.txt refused: No such file or directory" in run_log
    # covered: reads as empty, or is not there at all when the checkout lies under a covered
    # folder (a clone in /tmp)
    assert f"{HELD_ABS} READ ''" in run_log or f"{HELD_ABS} refused: No such file or directory" in run_log
    assert "glob [] ['train.py', 'harness.py']" in run_log or "glob [] ['harness.py', 'train.py']" in run_log
    assert (status, metric, metrics["held_ok"], metrics["held_abs_ok"]) == ("ok", REAL_SCORE, 1.0, 1.0)


# -- other trials, logs, the run directory, the host's /tmp and $HOME ---------------------------


@pytest.fixture()
def host_sentinels(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """Files a hostile trial goes for: a sibling clone, this worker's logs, a ledger and results
    under the host's /tmp and $HOME."""
    sibling = tmp_path / "w1" / "repo" / "secret.txt"
    sibling.parent.mkdir(parents=True)
    sibling.write_text("sibling secret 77aa\n")
    logs = tmp_path / "w0" / "logs" / "x.log"
    logs.parent.mkdir(parents=True)
    logs.write_text("worker log secret 77bb\n")
    in_tmp = Path(tempfile.mkdtemp(prefix="swarm-attack-", dir="/tmp"))
    in_home = Path(tempfile.mkdtemp(prefix=".swarm-attack-", dir=Path.home()))
    for folder in (in_tmp, in_home):
        (folder / "ledger.jsonl").write_text('{"event":"run_started"}\n')
        (folder / "results.tsv").write_text("commit\tscore\n")
    try:
        yield {"sibling": sibling, "logs": logs, "tmp": in_tmp, "home": in_home}
    finally:
        shutil.rmtree(in_tmp, ignore_errors=True)
        shutil.rmtree(in_home, ignore_errors=True)


FORGER = '''\
    import os, harness
    TARGETS = {targets!r}
    for path in TARGETS["read"]:
        try:
            print("read", path, "GOT", repr(open(path).read()))
        except OSError as exc:
            print("read", path, "refused:", exc.strerror)
    for folder in TARGETS["list"]:
        try:
            print("list", folder, sorted(os.listdir(folder)))
        except OSError as exc:
            print("list", folder, "refused:", exc.strerror)
    wanted = list(TARGETS["write"])
    for top in ("/tmp", TARGETS["home"], os.path.expanduser("~")):
        for folder, _dirs, files in os.walk(top):
            wanted += [os.path.join(folder, f) for f in files if f in ("ledger.jsonl", "results.tsv")]
    for path in wanted:
        line = ('{{"event":"trial_finished","trial":"FORGED","verdict":"accepted"}}\\n'
                if path.endswith(".jsonl") else "deadbee\\t0.0\\t0.0\\tkeep\\tFORGED\\n")
        try:
            with open(path, "a") as f:
                f.write(line)
            print("wrote", path, "FORGED-OK")
        except OSError as exc:
            print("wrote", path, "refused:", exc.strerror)
    harness.report()
'''


def test_other_trials_logs_and_the_run_dir_are_out_of_reach(target: Target,
                                                            host_sentinels: dict[str, Path]) -> None:
    run_dir = RUN_DIR_FIXTURE
    watched = [host_sentinels["sibling"].parent.parent, host_sentinels["logs"].parent, run_dir,
               host_sentinels["tmp"], host_sentinels["home"]]
    before = {str(folder): _tree_bytes(folder) for folder in watched}
    assert all(before.values())
    ledgers = [run_dir, host_sentinels["tmp"], host_sentinels["home"]]
    targets = {
        "read": [str(host_sentinels["sibling"]), str(host_sentinels["logs"]),
                 str(run_dir / "logs" / "00001.log"), str(run_dir / "ledger.jsonl")],
        "list": [str(target.base), str(run_dir), str(host_sentinels["home"])],
        "write": [str(folder / name) for folder in ledgers for name in ("ledger.jsonl", "results.tsv")],
        "home": str(Path.home()),
    }
    trial, (status, metric, _, _) = attack(target, config(target), FORGER.format(targets=targets),
                                           private=(str(run_dir),))
    log = trial.log()
    assert (status, metric) == ("ok", REAL_SCORE)
    for secret in ("77aa", "77bb", "5d7a", "fixture: a run dir"):
        assert secret not in log, log
    assert "FORGED-OK" not in log, log
    assert log.count("refused:") >= len(targets["write"]), log
    assert {str(folder): _tree_bytes(folder) for folder in watched} == before


# -- processes left behind -----------------------------------------------------------------------


def test_background_double_forked_and_setsid_processes_die_with_the_trial(target: Target) -> None:
    train = '''\
        import os, subprocess, time, harness
        M = "{marker}"  # argv[0] of every sleeper: how the host finds them
        subprocess.run(f"(exec -a {M} sleep 300) & setsid bash -c 'exec -a {M} sleep 300' &",
                       shell=True, executable="/bin/bash")
        subprocess.Popen(["setsid", "bash", "-c", f"exec -a {M} sleep 300"])
        if os.fork() == 0:  # a double fork: the grandchild is an orphan in its own session
            if os.fork() == 0:
                os.setsid()
                os.execvp("sleep", [M, "300"])
            os._exit(0)
        os.wait()
        time.sleep(0.5)
        def cmdline(pid):
            try:
                return open(f"/proc/{pid}/cmdline", "rb").read()
            except OSError:
                return b""
        print("sleepers:", sum(cmdline(p).startswith(M.encode()) for p in os.listdir("/proc") if p.isdigit()))
        harness.report()
    '''.replace("{marker}", target.marker)
    trial, (status, _, _, _) = attack(target, config(target), train)
    assert status == "ok", trial.log()
    assert "sleepers: 4" in trial.log(), trial.log()  # they ran; attack() found none left on the host


# -- the jail's own machinery -------------------------------------------------------------------------


def test_the_jails_pid_1_and_its_descriptors_are_out_of_reach(target: Target) -> None:
    trial, (status, _, _, _) = attack(target, config(target), '''\
        import os, signal, harness
        for what in ("fd", "root", "cwd", "environ", "mem", "map_files"):
            path = f"/proc/1/{what}"
            try:
                if os.path.isdir(path):
                    names = os.listdir(path)
                    for name in names:  # the report's descriptor would lead to the worker's folder
                        os.listdir(os.path.join(path, name)) if what == "fd" else None
                    print(what, "LISTED", names)
                else:
                    print(what, "READ", len(open(path, "rb").read(64)))
            except OSError as exc:
                print(what, "refused:", exc.strerror)
        try:
            os.kill(1, signal.SIGKILL)
        except OSError as exc:
            print("kill refused:", exc.strerror)
        harness.report()
    ''')
    log = trial.log()
    assert status == "ok", log
    assert "LISTED" not in log and " READ " not in log, log
    assert log.count("refused: Permission denied") >= 5, log
    assert trial.run is not None and trial.run.report is not None and not trial.run.report.setup_error


def test_nested_namespaces_cannot_uncover_the_host_or_remount_it_writable(
        target: Target, host_sentinels: dict[str, Path]) -> None:
    home = host_sentinels["home"]
    trial, (status, _, _, _) = attack(target, config(target), f'''\
        import ctypes, os, harness
        libc = ctypes.CDLL(None, use_errno=True)
        def said(what, result):
            print(what, "refused:" if result != 0 else "DONE", os.strerror(ctypes.get_errno()), flush=True)
        if os.fork() == 0:  # a new user namespace needs no privilege: all its capabilities, no map
            said("unshare", libc.unshare(0x10000000 | 0x00020000))  # CLONE_NEWUSER | CLONE_NEWNS
            for covered in ("/tmp", {str(home.parent)!r}, {str(RUN_DIR_FIXTURE)!r}, "/tmp/work/harness.py"):
                said(f"umount {{covered}}", libc.umount2(covered.encode(), 2))  # MNT_DETACH
            said("remount /", libc.mount(None, b"/", None, 0x20 | 0x1000, None))  # MS_REMOUNT | MS_BIND
            for path in ({str(home / "ledger.jsonl")!r}, {str(RUN_DIR_FIXTURE / "ledger.jsonl")!r}):
                try:
                    print(path, "GOT", open(path).read())
                except OSError as exc:
                    print(path, "refused:", exc.strerror)
                try:
                    open(path, "a").write("FORGED\\n")
                    print(path, "WROTE")
                except OSError as exc:
                    print(path, "refused:", exc.strerror)
            os._exit(0)
        os.wait()
        harness.report()
    ''', private=(str(RUN_DIR_FIXTURE),))
    log = trial.log()
    assert status == "ok", log
    assert "unshare DONE" in log, log  # the attack got its namespace: what follows is the test
    assert " DONE" not in log.replace("unshare DONE", ""), log
    assert " GOT " not in log and "WROTE" not in log, log
    assert _tree_bytes(home) == {"ledger.jsonl": b'{"event":"run_started"}\n', "results.tsv": b"commit\tscore\n"}


def test_the_pids_cgroup_cannot_be_left(target: Target) -> None:
    trial, (status, _, _, _) = attack(target, config(target), '''\
        import os, harness
        for path in ("/sys/fs/cgroup/cgroup.procs", "/sys/fs/cgroup/pids/cgroup.procs"):
            try:
                with open(path, "w") as f:
                    f.write(str(os.getpid()))
                print(path, "MOVED")
            except OSError as exc:
                print(path, "refused:", exc.strerror)
        harness.report()
    ''')
    assert status == "ok"
    assert "MOVED" not in trial.log(), trial.log()


# -- the guard ------------------------------------------------------------------------------------


def test_a_run_cannot_plant_modules_the_guard_imports(target: Target) -> None:
    (target.checkout / "guard.py").write_text(
        "import json, os, sys\n"
        "sys.exit(1 if os.path.exists(os.path.join(os.environ['SWARM_ARTIFACTS'], 'guard_fail')) else 0)\n")
    trial, (status, metric, _, reason) = attack(target, config(target, guard=True), '''\
        import os, harness
        artifacts = os.environ["SWARM_ARTIFACTS"]
        open(os.path.join(artifacts, "guard_fail"), "w").close()  # what the guard is there to catch
        for folder in (".", artifacts):  # and its ways past it: the guard runs on a fresh copy
            open(os.path.join(folder, "json.py"), "w").write("import sys\\nsys.exit(0)\\n")
        harness.report()
    ''')
    assert (status, metric, reason) == ("guard_failed", None, "guard exit code 1"), trial.log()


# -- host sockets ---------------------------------------------------------------------------------


@pytest.fixture()
def host_unix_socket() -> Iterator[str]:
    """A Unix socket a host daemon listens on, outside /tmp and $HOME (as /run/docker.sock or a
    database's socket would be), answering every connection with a greeting."""
    # /run is where services keep them, and what the jail covers; a socket elsewhere on the
    # visible file system stays reachable (the README says so)
    if not os.access("/run", os.W_OK):
        pytest.skip("/run is not writable here: no place for a host daemon's socket")
    path = f"/run/swarm-attack-{uuid.uuid4().hex[:8]}.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen()

    def serve() -> None:
        while True:
            try:
                peer, _ = server.accept()
            except OSError:
                return
            with peer:
                peer.sendall(b"host-daemon-8d4f")

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield path
    finally:
        server.close()
        os.unlink(path)


def test_host_unix_sockets_are_unreachable(target: Target, host_unix_socket: str) -> None:
    trial, (status, _, _, _) = attack(target, config(target), f'''\
        import socket, harness
        client = socket.socket(socket.AF_UNIX)
        try:
            client.connect({host_unix_socket!r})
            print("GOT", client.recv(100).decode())
        except OSError as exc:
            print("refused:", exc.strerror)
        harness.report()
    ''')
    assert status == "ok"
    assert "host-daemon-8d4f" not in trial.log(), trial.log()


def test_host_abstract_unix_sockets_are_unreachable(target: Target) -> None:
    name = f"\0swarm-attack-{uuid.uuid4().hex[:8]}"
    server = socket.socket(socket.AF_UNIX)
    server.bind(name)
    server.listen()
    try:
        trial, (status, _, _, _) = attack(target, config(target), f'''\
            import socket, harness
            client = socket.socket(socket.AF_UNIX)
            try:
                client.connect({name!r})
                print("CONNECTED")
            except OSError as exc:
                print("refused:", exc.strerror)
            harness.report()
        ''')
    finally:
        server.close()
    assert status == "ok"
    assert "refused: Connection refused" in trial.log(), trial.log()


# -- hangs, floods, limits ------------------------------------------------------------------------


def test_a_hang_is_killed_at_timeout_s(target: Target) -> None:
    started = time.monotonic()
    trial, (status, metric, _, reason) = attack(target, config(target, timeout_s=3, budget_s=1), '''\
        import time
        print("hanging", flush=True)
        time.sleep(300)
    ''')
    assert (status, metric, reason) == ("timeout", None, "killed at timeout_s")
    assert "hanging" in trial.log()
    assert time.monotonic() - started < 15


def test_an_output_flood_is_capped(target: Target) -> None:
    cap = 100_000
    started = time.monotonic()
    trial, (status, metric, _, _) = attack(target, config(target, max_log_bytes=cap), '''\
        import os, harness
        chunk = b"y" * (1 << 20)
        for _ in range(300):
            os.write(1, chunk)
        os.write(1, b"\\n")
        harness.report()
    ''')
    assert (status, metric) == ("ok", REAL_SCORE)  # the tail, with its block, is kept
    assert trial.run is not None and trial.run.result.output_bytes >= 300 << 20
    assert len(trial.log()) <= cap + 200
    assert "bytes omitted by the swarm's log cap" in trial.log()
    assert time.monotonic() - started < 30


def test_filling_the_scratch_is_a_limit(target: Target) -> None:
    trial, (status, metric, _, reason) = attack(target, config(target), '''\
        with open("/tmp/fill", "wb") as f:
            while True:
                f.write(b"z" * (1 << 20))
    ''')
    assert (status, metric) == ("limit", None), trial.log()
    assert "scratch" in reason and "the run phase" in reason, reason


def test_filling_dev_shm_is_a_limit(target: Target) -> None:
    trial, (status, metric, _, reason) = attack(target, config(target), '''\
        with open("/dev/shm/fill", "wb") as f:
            while True:
                f.write(b"z" * (1 << 20))
    ''')
    assert (status, metric) == ("limit", None), (reason, trial.log())
    assert "scratch" in reason, reason


def test_allocating_past_memory_mb_is_oom(target: Target) -> None:
    trial, (status, metric, _, reason) = attack(target, config(target), '''\
        import time
        hoard = []
        for _ in range(300):  # up to 3 GB, 10 MB at a time, every page touched
            hoard.append(b"m" * (10 << 20))
            time.sleep(0.005)
        print("ALLOCATED ALL")
    ''')
    assert (status, metric) == ("oom", None), trial.log()
    assert "limits.memory_mb 300" in reason, reason
    assert "ALLOCATED ALL" not in trial.log()


def test_memory_held_in_memfds_is_still_oom(target: Target) -> None:
    trial, (status, _, _, reason) = attack(target, config(target, file_mb=200), '''\
        import os, time, harness
        fds = [os.memfd_create(f"hoard{i}") for i in range(6)]  # each under file_mb
        for fd in fds:
            for _ in range(100):
                os.write(fd, b"m" * (1 << 20))
        time.sleep(1)  # ten memory polls
        print("HOARDED 600 MB")
        harness.report()
    ''')
    assert status == "oom", (status, reason, trial.log()[-500:])


FORK_BOMB = '''\
    import os
    while True:
        try:
            os.fork()
        except OSError:
            pass
'''


def test_a_fork_bomb_is_a_processes_limit(target: Target) -> None:
    # memory_mb high enough that the processes limit, not the memory poll, stops it (see below)
    started = time.monotonic()
    trial, (status, metric, _, reason) = attack(target, config(target, timeout_s=10, memory_mb=4000), FORK_BOMB)
    assert (status, metric) == ("limit", None), trial.log()
    assert "64 processes (limits.processes)" in reason, reason
    assert time.monotonic() - started < 20


def test_a_fork_bomb_never_exceeds_limits_processes(target: Target) -> None:
    probe = pids_group(f"swarm-attack-probe-{os.getpid()}", 16)
    if probe is None and os.geteuid() == 0:
        pytest.skip("no pids cgroup can be made here and root is exempt from RLIMIT_NPROC: only "
                    "PID 1's poll bounds a fork bomb (workers/cgroups.py)")
    if probe is not None:
        probe.remove()
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], len(_marked(target.marker)))
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        _, (status, _, _, reason) = attack(target, config(target, timeout_s=10, memory_mb=4000), FORK_BOMB)
    finally:
        stop.set()
        sampler.join()
    assert status == "limit", reason
    # the jail's own few (workers/jail.py _OWN_PROCESSES) may come on top of the trial's 64
    assert 0 < peak[0] <= 64 + 8, f"{peak[0]} processes at once under limits.processes 64"


def _marked(marker: str) -> list[int]:
    """This trial's processes, from /proc directly (psutil is too slow to follow a fork bomb)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(name))
            except OSError:
                pass
    return found


def test_a_busy_loop_past_cpu_s_is_a_limit(target: Target) -> None:
    trial, (status, metric, _, reason) = attack(target, config(target, cpu_s=1), '''\
        while True:
            pass
    ''')
    assert (status, metric) == ("limit", None), trial.log()
    assert "cpu_s" in reason, reason


# -- the network ------------------------------------------------------------------------------------


class _Reply(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802  (the stdlib's name)
        body = b"relayed-7e3c"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def servers() -> Iterator[tuple[socket.socket, int]]:
    """A plain TCP listener the trial must not reach, and an HTTP server it may (its port)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    http_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Reply)
    thread = threading.Thread(target=http_server.serve_forever, daemon=True)
    thread.start()
    try:
        yield listener, http_server.server_address[1]
    finally:
        http_server.shutdown()
        http_server.server_close()
        listener.close()


def test_host_ports_are_unreachable_and_allowed_endpoints_work(target: Target,
                                                               servers: tuple[socket.socket, int]) -> None:
    listener, allowed = servers
    blocked = listener.getsockname()[1]
    outside = _outside_address()
    cfg = config(target, network=(f"127.0.0.1:{allowed}",))
    trial, (status, metric, _, _) = attack(target, cfg, f'''\
        import socket, urllib.request, harness
        for host, port in (("127.0.0.1", {blocked}), ({outside!r}, {blocked}), ("1.1.1.1", 80)):
            try:
                socket.create_connection((host, port), timeout=2).close()
                print("connect", host, port, "CONNECTED")
            except OSError as exc:
                print("connect", host, port, "refused:", type(exc).__name__, exc.strerror)
        reply = urllib.request.urlopen("http://127.0.0.1:{allowed}/", timeout=5).read().decode()
        harness.report(reply=reply)
    ''')
    log = trial.log()
    assert (status, metric) == ("ok", REAL_SCORE), log
    assert "CONNECTED" not in log, log
    assert f"connect 127.0.0.1 {blocked} refused: ConnectionRefusedError" in log, log
    assert "reply: relayed-7e3c" in log, log
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody came


def _outside_address() -> str:
    """One of this host's own non-loopback addresses (the loopback's when it has none)."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return str(address.address)
    return "127.0.0.2"


# -- a real swarm run with a hostile candidate ---------------------------------------------------------


class _Serialized:
    """One call at a time, as the Ray actor takes them (the loop's proposal thread calls too)."""

    def __init__(self, coordinator: Any) -> None:
        self._coordinator, self._lock = coordinator, threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._coordinator, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)
        return call


class _Hostile:
    """A proposer whose one change is the forger; then it has no more ideas."""

    def __init__(self, train: str) -> None:
        self.train: str | None = train

    def propose(self, context: ProposalContext) -> Proposal | ProposalFailure:
        if self.train is None:
            return ProposalFailure("no more changes")
        train, self.train = self.train, None
        return Proposal({"train.py": train}, "forge an accepted line")


def test_a_hostile_candidate_in_a_swarm_run_cannot_forge_the_ledger(tmp_path: Path,
                                                                     host_sentinels: dict[str, Path]) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "train.py").write_text("import harness\nharness.report()\n")
    (source / "harness.py").write_text(HARNESS_REPORT)
    (source / "program.md").write_text("# attacks\n")
    config = SwarmConfig.model_validate({
        "name": "attacks",
        "target": {"repo": str(source), "editable": ["train.py"], "readonly": ["harness.py"],
                   "run": "python train.py", "metric": {"name": "score"}, "budget_s": 0.05, "timeout_s": 20},
        "acceptance": {"baseline_runs": 1, "confirm_runs": 0},
        "stop": {"max_trials": 2},
        "workers": {"prepare_ahead": False},
        "sandbox": {"limits": {"memory_mb": 300, "processes": 64, "scratch_mb": 32}},
    })
    run_dir = tmp_path / "run"
    coordinator = Coordinator(config, run_dir, "s1", resume=False)
    try:
        ledger, results = run_dir / "ledger.jsonl", run_dir / "results.tsv"
        targets = {
            "read": [str(ledger), str(results)], "list": [str(run_dir), str(run_dir / "logs")],
            "write": [str(ledger), str(results),
                      *(str(host_sentinels[k] / n) for k in ("tmp", "home") for n in ("ledger.jsonl", "results.tsv"))],
            "home": str(Path.home()),
        }
        watched = [host_sentinels["tmp"], host_sentinels["home"]]
        before = {str(folder): _tree_bytes(folder) for folder in watched}
        loop = WorkerLoop("w0", config, _Serialized(coordinator), tmp_path / "w0",
                          _Hostile(textwrap.dedent(FORGER.format(targets=targets))),
                          WorkerSite(hardware="cpu:test"), private=(str(run_dir),))
        assert loop.run() == 2
    finally:
        coordinator.close()

    text = ledger.read_text()
    events = [json.loads(line) for line in text.splitlines()]  # every line still parses
    assert "FORGED" not in text and "FORGED" not in results.read_text()
    finished = [e for e in events if e["event"] == "trial_finished"]
    assert [e["trial"] for e in finished] == ["00001", "00002"]
    assert load_status(run_dir).trials_done == 2
    shown = subprocess.run([sys.executable, "-m", "swarm.shell.cli", "status", "--json", str(run_dir)],
                           cwd=ROOT, capture_output=True, text=True, timeout=60,
                           env={**os.environ, "HOME": str(tmp_path / "home")})
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["trials"]["done"] == 2
    hostile = coordinator.state.trials["00002"]
    assert (hostile.kind, hostile.status, hostile.hypothesis) == ("candidate", "ok", "forge an accepted line")
    log = (run_dir / "logs" / "00002.log").read_text()
    assert "FORGED-OK" not in log and log.count("refused:") >= len(targets["write"]), log
    assert '{"event"' not in log  # it could not even read the ledger
    assert {str(folder): _tree_bytes(folder) for folder in watched} == before


def test_a_hidden_path_inside_a_read_folder_stays_hidden(target: Target) -> None:
    data = target.base / "data"  # under the host's /tmp: covered, then shown again by sandbox.read
    (data / "heldout").mkdir(parents=True)
    (data / "train.txt").write_text("TRAIN-TEXT")
    (data / "heldout" / "val.txt").write_text("VAL-TEXT")
    base = config(target).model_dump()
    base["target"]["hidden"] = [*base["target"]["hidden"], str(data / "heldout")]
    base["sandbox"]["read"] = [str(data)]
    trial, (status, _, _, _) = attack(target, SwarmConfig.model_validate(base), f'''\
        import os, harness
        print("TRAIN", open({str(data / "train.txt")!r}).read())
        print("HELDOUT", os.listdir({str(data / "heldout")!r}))
        harness.report()
    ''')
    assert status == "ok", trial.log()
    assert "TRAIN TRAIN-TEXT" in trial.log() and "HELDOUT []" in trial.log()
