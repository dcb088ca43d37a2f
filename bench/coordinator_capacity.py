"""How much the coordinator handles: results per second, decision latency and memory with 16,
256 and 1,024 simulated workers; and what a repository with 10,000 trial refs costs per result.

1. Results per second. The coordinator is the real `coordinator.service.Coordinator`, called
   one call at a time as the Ray actor runs them (one lock); the workers are threads whose
   trials return at once: each asks for work, makes a one-line change to examples/quadratic's
   train.py on the commit it was given (in-process, `Crafter`: a real commit in a real bundle,
   without the five git processes a real worker spends on it, which would otherwise take the
   two cores this machine has) and reports a noisy score straight away, so the coordinator is
   the bottleneck. Per row: results/s over the row; the coordinator's own time per call (median /
   p90) for `next_work`, `begin_candidate` and `report` (verdicts, merges, results.tsv); a
   report's latency as its worker sees it (waiting for the lock plus the call); and the share of
   the row the coordinator was busy. Memory: the size of the coordinator's state after the row
   (the object graph of `SwarmState` plus its per-worker tables, walked with `sys.getsizeof`),
   per trial, and the process's resident-memory growth over the row. The state is the number
   that carries to a real run: RSS also holds the threads' stacks and the workers' side of this
   one process, and tracemalloc would slow every call it is meant to time.
2. 10,000 trial refs. Two runs side by side, one whose repository holds 0 extra refs under
   refs/swarm/trials/ and one holding 10,000 (distinct commits written by `git fast-import`, as
   a long run leaves them, loose). In each, a worker's `Workspace` proposes candidates that the
   coordinator accepts; timed: the worker's `Workspace.bundle`, and inside `Coordinator.report`
   the real `gitops` calls (fetch the bundle, set the trial ref, re-check scope, commit onto
   swarm/best) and `Pool.show_best`; then the replay of a stale winner (`Pool.replay`:
   `gitops.cherry_pick` onto the new best, `commit_tree`, `set_ref`). Medians of the
   candidates, and the ratio between the two repositories.

    .venv/bin/python bench/coordinator_capacity.py             # 16, 256, 1,024 workers x 60 s; 10,000 refs
    .venv/bin/python bench/coordinator_capacity.py --quick     # 16 workers x 5 s; 1,000 refs
    .venv/bin/python bench/coordinator_capacity.py --profile --workers 16 --seconds 40   # report's time
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import platform
import pstats
import random
import re
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import git  # noqa: E402

from coordinator.service import Coordinator  # noqa: E402
from swarm.core import gitops, packs  # noqa: E402
from swarm.core.config import SwarmConfig, load_config  # noqa: E402
from swarm.core.packs import GitObject  # noqa: E402
from swarm.core.values import CandidateInfo, TrialOutcome, WorkerSite  # noqa: E402
from workers.workspace import Workspace  # noqa: E402

HARDWARE = WorkerSite(hardware="cpu:bench")
CALLS = ("next_work", "begin_candidate", "report")


# -- 1. results per second ------------------------------------------------------------------


class Timed:
    """The coordinator behind one lock (the actor runs one call at a time), timing each call
    both inside the lock (the coordinator's own time) and from the caller's side (with the wait)."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator, self.lock = coordinator, threading.Lock()
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.seen: dict[str, list[float]] = defaultdict(list)

    def call(self, name: str, *args: Any) -> Any:
        asked = time.perf_counter()
        with self.lock:
            started = time.perf_counter()
            result = getattr(self.coordinator, name)(*args)
            done = time.perf_counter()
            self.seconds[name].append(done - started)
            self.seen[name].append(done - asked)
            return result


def _new_score(text: str, value: float) -> str:
    return re.sub(r"^A = .*$", f"A = {value}", text, flags=re.M)


KNOBS = ("A", "B", "C")  # the quadratic's constants, on lines of their own: changes to two of them merge


def _score(text: str, rng: random.Random) -> float:
    """The quadratic's score of a train.py (sgd's penalty included), with its noise."""
    a, b, c = (float(re.search(rf"^{k} = (.*)$", text, flags=re.M).group(1)) for k in KNOBS)  # type: ignore[union-attr]
    return (a - 3.0) ** 2 + 2 * (b - 0.3) ** 2 + 2 * (c - 0.25) ** 2 + 0.6 + rng.gauss(0.0, 0.02)


class Crafter:
    """The simulated workers' commits, made in-process: the parent's tree is read from the
    coordinator's repository (through a Repo object of its own, so its own cat-file processes),
    and the new blob, tree and commit are hashed here and sent as a real v2 bundle around a real
    pack, which the coordinator reads as it reads any worker's. A worker's git processes (a
    checkout, a commit, a bundle: five per proposal) would otherwise take most of two cores,
    and the row would measure them instead of the coordinator. Nothing is written to the
    coordinator's repository: the objects reach it only in the bundle."""

    def __init__(self, repo_dir: Path) -> None:
        self.repo, self.lock, self.made = git.Repo(repo_dir), threading.Lock(), 0

    def text(self, commit: str, path: str = "train.py") -> str:
        with self.lock:
            return str((self.repo.commit(commit).tree / path).data_stream.read().decode())

    def commit_on(self, parent: str, text: str, message: str, path: str = "train.py") -> tuple[str, str, bytes]:
        """(commit, tree, bundle) of `parent` with `path` holding `text`."""
        with self.lock:
            tree_sha = self.repo.commit(parent).tree.hexsha
            raw_tree = self.repo.odb.stream(bytes.fromhex(tree_sha)).read()
            self.made += 1
            made = self.made
        blob = GitObject("blob", text.encode())
        tree = GitObject("tree", _with_entry(raw_tree, path.encode(), bytes.fromhex(blob.sha)))
        stamp = f"swarm <swarm@localhost> {int(time.time())} +0000"
        commit = GitObject("commit", f"tree {tree.sha}\nparent {parent}\nauthor {stamp}\ncommitter {stamp}\n\n"
                                     f"{message} ({made})\n".encode())
        header = f"# v2 git bundle\n-{parent} parent\n{commit.sha} refs/swarm/outgoing/{commit.sha}\n\n".encode()
        return commit.sha, tree.sha, header + _pack_of([commit, tree, blob])


def _with_entry(raw_tree: bytes, name: bytes, sha: bytes) -> bytes:
    """A tree object's entries with `name`'s object replaced (mode, name and order kept)."""
    out, pos, found = bytearray(), 0, False
    while pos < len(raw_tree):
        nul = raw_tree.index(b"\0", pos)
        mode, entry = raw_tree[pos:nul].split(b" ", 1)
        old = raw_tree[nul + 1:nul + 21]
        found = found or entry == name
        out += raw_tree[pos:nul + 1] + (sha if entry == name else old)
        pos = nul + 21
    assert found, f"the tree has no {name!r}"
    return bytes(out)


def _pack_of(objects: list[GitObject]) -> bytes:
    """A version-2 pack of whole (undeltified) objects, as git's format has it."""
    kinds = {kind: number for number, kind in packs.KINDS.items()}
    body = bytearray(b"PACK" + struct.pack(">II", 2, len(objects)))
    for obj in objects:
        size = len(obj.data)
        byte, size = (kinds[obj.kind] << 4) | (size & 15), size >> 4
        while size:
            body.append(byte | 0x80)
            byte, size = size & 0x7F, size >> 7
        body.append(byte)
        body += zlib.compress(obj.data)
    return bytes(body + hashlib.sha1(body).digest())


def simulated_worker(worker: str, timed: Timed, crafter: Crafter, deadline: float, seed: int) -> None:
    """A worker without an experiment: it proposes a new value for one of the quadratic's
    constants, and scores whatever it is asked to run (a baseline, a re-run, a union) by the
    constants its commit holds, with the target's noise."""
    rng = random.Random(seed)
    timed.call("hello", worker, HARDWARE)
    have = None
    while time.monotonic() < deadline:
        unit = timed.call("next_work", worker, have, HARDWARE)
        if unit.action == "stop":
            return
        have = unit.best_commit  # its bundle is a worker's to read: the crafter reads the pool itself
        if unit.action == "wait":
            time.sleep(unit.wait_s)
            continue
        if unit.action == "evaluate":
            text = crafter.text(unit.commit)
            timed.call("report", TrialOutcome(unit.trial_id, worker, "ok", _score(text, rng),
                                              seconds=0.0, hardware="cpu:bench", log="---\n"))
            continue
        knob, value = rng.choice(KNOBS), round(rng.uniform(0.0, 6.0 if rng.random() < 0.34 else 1.0), 6)
        text = re.sub(rf"^{knob} = .*$", f"{knob} = {value}", crafter.text(unit.commit), flags=re.M)
        commit, tree, bundle = crafter.commit_on(unit.commit, text, f"{knob} = {value}")
        admission = timed.call("begin_candidate", CandidateInfo(worker, unit.commit, commit, tree, f"{knob} = {value}"))
        if admission.refusal:
            continue
        timed.call("report", TrialOutcome(admission.trial_id, worker, "ok", _score(text, rng), seconds=0.0,
                                          hardware="cpu:bench", log="---\n", bundle=bundle))


@dataclass
class Row:
    workers: int
    wall: float
    trials: int  # trials the coordinator recorded (results plus duplicates refused at the door)
    accepted: int
    unions: tuple[int, int]  # unions built, and accepted
    seconds: dict[str, list[float]]
    seen: dict[str, list[float]]
    state_bytes: int
    worker_table_bytes: int  # the coordinator's per-worker tables (live, refusals)
    rss_growth: int
    ledger_bytes: int

    @property
    def results(self) -> int:
        return len(self.seconds["report"])

    @property
    def busy(self) -> float:
        return sum(sum(samples) for samples in self.seconds.values()) / self.wall


def _config(workers: int, **acceptance: Any) -> SwarmConfig:
    return load_config(ROOT / "configs" / "quadratic.yaml", {
        "target.repo": str(ROOT / "examples" / "quadratic"), "workers.count": workers,
        "stop.max_trials": 10_000_000, **{f"acceptance.{k}": v for k, v in acceptance.items()}})


def measure(workers: int, seconds: float) -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        gc.collect()
        rss_before = _rss_bytes()
        coordinator = Coordinator(_config(workers, baseline_runs=3), Path(tmp) / "run", "bench", resume=False)
        timed, crafter = Timed(coordinator), Crafter(Path(coordinator.pool.repo.working_dir))
        deadline = time.monotonic() + seconds
        started = time.monotonic()
        threads = [threading.Thread(target=simulated_worker,
                                    args=(f"w{i}", timed, crafter, deadline, i), daemon=True)
                   for i in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - started
        rss_growth = _rss_bytes() - rss_before  # threads are joined; the coordinator is still open
        state = coordinator.state
        unions = [t for t in state.trials.values() if t.parts]
        row = Row(workers, wall, len(state.trials), len(state.history) - 1,
                  (len(unions), sum(1 for t in unions if t.verdict == "accepted")), dict(timed.seconds),
                  dict(timed.seen), deep_size(state),
                  deep_size([coordinator.roster.live, coordinator.roster.placement, state.refusal_streak,
                             state.refused_at]),
                  rss_growth, (Path(tmp) / "run" / "ledger.jsonl").stat().st_size)
        crafter.repo.close()
        coordinator.close()
    return row


def deep_size(root: object) -> int:
    """Bytes of every object reachable from `root` (each counted once; code and types left out)."""
    seen: set[int] = set()
    stack, total = [root], 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, ModuleType, FunctionType)):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    if not ordered:
        return "-"
    return f"{1000 * ordered[len(ordered) // 2]:.1f} / {1000 * ordered[int(len(ordered) * 0.9)]:.1f}"


def _quarters(samples: list[float]) -> str:
    """Whether a result costs more as the run's trials pile up: the median of the first and of
    the last quarter of the reports, in the order they came."""
    quarter = len(samples) // 4
    if not quarter:
        return "-"
    first, last = sorted(samples[:quarter]), sorted(samples[-quarter:])
    return f"{1000 * first[len(first) // 2]:.1f} / {1000 * last[len(last) // 2]:.1f}"


def print_capacity(rows: list[Row], seconds: float) -> None:
    print(f"## results per second ({seconds:g} s per row)\n")
    print("| workers | results | results/s | accepted | unions (accepted) | coordinator busy "
          "| next_work ms (median / p90) | begin_candidate ms | report ms | report ms as the worker sees it "
          "| report ms median: first / last quarter of the row |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.workers} | {r.results} | {r.results / r.wall:.1f} | {r.accepted} "
              f"| {r.unions[0]} ({r.unions[1]}) | {r.busy:.0%} "
              f"| {_ms(r.seconds['next_work'])} | {_ms(r.seconds['begin_candidate'])} "
              f"| {_ms(r.seconds['report'])} | {_ms(r.seen['report'])} | {_quarters(r.seconds['report'])} |")
    print("\n## memory after each row\n")
    print("| workers | trials in state | state KB | state bytes per trial | per-worker tables KB "
          "| ledger KB | process RSS growth MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.workers} | {r.trials} | {r.state_bytes / 1024:.0f} | {r.state_bytes / max(r.trials, 1):.0f} "
              f"| {r.worker_table_bytes / 1024:.0f} | {r.ledger_bytes / 1024:.0f} | {r.rss_growth / 2**20:.1f} |")


# -- 2. a repository with many trial refs ---------------------------------------------------


@contextmanager
def stopwatch(owner: Any, names: list[str], seconds: dict[str, list[float]],
              key: Callable[[str, tuple], str] = lambda name, args: name) -> Iterator[None]:
    """Times every call of `owner.<name>` (the real function, wrapped) while the block runs."""
    originals = {name: getattr(owner, name) for name in names}

    def wrapped(name: str, function: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[key(name, args)].append(time.perf_counter() - started)
        return timed

    for name, function in originals.items():
        setattr(owner, name, wrapped(name, function))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(owner, name, function)


def _gitops_key(name: str, args: tuple) -> str:
    # set_ref moves both a trial's ref and swarm/best: tell them apart by the ref's namespace
    return f"set_ref {args[1].split('/')[2]}" if name == "set_ref" else name


def add_trial_refs(repo_dir: Path, parent: str, count: int) -> None:
    """`count` distinct one-file commits on `parent`, each under refs/swarm/trials/ (fast-import
    writes them as loose refs, as `update-ref` leaves a run's)."""
    stream = []
    for i in range(count):
        text = f"A = {i}\n"
        stream.append(f"commit refs/swarm/trials/pre-{i:05d}\ncommitter swarm <swarm@localhost> 1700000000 +0000\n"
                      f"data 8\nearlier\nfrom {parent}\nM 100644 inline train.py\ndata {len(text)}\n{text}\n")
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo_dir, input="".join(stream).encode(), check=True)


class RefsRun:
    """A coordinator whose repository holds `refs` extra trial refs, and one worker's workspace."""

    def __init__(self, tmp: Path, refs: int) -> None:
        keep_if_lower = _config(1, baseline_runs=1, confirm_runs=0, noise_k=0.0)  # every better candidate accepted
        self.coordinator = Coordinator(keep_if_lower, tmp / "run", "bench", resume=False)
        self.base = self.coordinator.state.best.commit
        add_trial_refs(Path(self.coordinator.pool.repo.working_dir), self.base, refs)
        self.refs = len(self.coordinator.pool.repo.git.for_each_ref("refs/swarm/trials/").splitlines())
        self.space = Workspace(tmp / "worker")
        self.have: str | None = None
        self.score = 5.0
        self.seconds: dict[str, list[float]] = defaultdict(list)

    def proposal_unit(self) -> Any:
        """Asks for work until it is a proposal (re-running best when asked to)."""
        while True:
            started = time.perf_counter()
            unit = self.coordinator.next_work("w0", self.have, HARDWARE)
            self.seconds["next_work"].append(time.perf_counter() - started)
            self.space.receive(unit.bundle)
            self.have = unit.best_commit
            if unit.action == "propose":
                return unit
            assert unit.action == "evaluate", unit.action
            self.coordinator.report(TrialOutcome(unit.trial_id, "w0", "ok", self.score, seconds=0.0,
                                                 hardware="cpu:bench", log="---\n"))

    def accept_one(self, value: float) -> tuple[str, str]:
        """One better candidate, from the worker's commit to its acceptance; (parent, commit)."""
        unit = self.proposal_unit()
        self.space.start_proposal(unit.commit)
        text = _new_score(self.space.read_text("train.py"), value)
        commit, tree = self.space.commit_on(unit.commit, {"train.py": text}, f"A = {value}")
        started = time.perf_counter()
        bundle = self.space.bundle(commit, unit.commit)
        self.seconds["Workspace.bundle"].append(time.perf_counter() - started)
        admission = self.coordinator.begin_candidate(CandidateInfo("w0", unit.commit, commit, tree, f"A = {value}"))
        assert admission.refusal is None and admission.trial_id, admission
        trial = admission.trial_id
        self.score -= 0.5  # far beyond any noise: accepted at once (confirm_runs 0)
        before = len(self.coordinator.state.history)
        with stopwatch(gitops, ["read_bundle", "set_ref", "changed_paths", "commit_tree"], self.seconds, _gitops_key), \
                stopwatch(self.coordinator.pool, ["show_best"], self.seconds):
            started = time.perf_counter()
            self.coordinator.report(TrialOutcome(trial, "w0", "ok", self.score, seconds=0.0,
                                                 hardware="cpu:bench", log="---\n", bundle=bundle))
            self.seconds["Coordinator.report"].append(time.perf_counter() - started)
        assert len(self.coordinator.state.history) == before + 1, "the candidate was not accepted"
        return unit.commit, commit

    def merge_stale(self, parent: str, value: float) -> None:
        """A winner proposed on an older best, replayed onto today's best as the coordinator does it."""
        self.space.start_proposal(parent)
        text = re.sub(r"^B = .*$", f"B = {value}", self.space.read_text("train.py"), flags=re.M)
        commit, _ = self.space.commit_on(parent, {"train.py": text}, f"B = {value}")
        pool = self.coordinator.pool
        gitops.read_bundle(pool.repo, self.space.bundle(commit, parent))
        best = self.coordinator.state.current_best.commit
        started = time.perf_counter()
        replayed = pool.replay(commit, best, f"B = {value}", f"refs/swarm/rebased/bench-{value}")
        assert not replayed.conflicted, "the stale winner conflicts"
        self.seconds["stale merge: cherry_pick + commit_tree + set_ref"].append(time.perf_counter() - started)


REFS_STEPS = [  # (label in the table, key in RefsRun.seconds)
    ("worker: Workspace.bundle", "Workspace.bundle"),
    ("coordinator: fetch the bundle (gitops.read_bundle)", "read_bundle"),
    ("coordinator: set the trial ref (gitops.set_ref)", "set_ref trials"),
    ("coordinator: re-check scope (gitops.changed_paths)", "changed_paths"),
    ("coordinator: accepted commit onto swarm/best (gitops.commit_tree)", "commit_tree"),
    ("coordinator: move swarm/best, reset (Pool.show_best)", "show_best"),
    ("coordinator: whole report of an accepted candidate (Coordinator.report)", "Coordinator.report"),
    ("coordinator: stale winner onto best (Pool.replay: cherry_pick + commit_tree + set_ref)",
     "stale merge: cherry_pick + commit_tree + set_ref"),
    ("coordinator: next_work (sends the new best as a bundle)", "next_work"),
]


def measure_refs(ref_counts: list[int], candidates: int) -> list[RefsRun]:
    """The same candidates through runs with each count of refs, interleaved so that the
    machine's load falls on every run alike."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = [RefsRun(Path(tmp) / f"refs{count}", count) for count in ref_counts]
        for i in range(candidates):
            for run in runs:
                parent, _ = run.accept_one(round(2.9 + 0.01 * i, 3))
                run.merge_stale(parent, round(1.0 + 0.1 * i, 3))
        for run in runs:
            run.coordinator.close()
    return runs


def _median_ms(samples: list[float]) -> float:
    return 1000 * sorted(samples)[len(samples) // 2]


def print_refs(runs: list[RefsRun], candidates: int) -> None:
    few, many = runs[0], runs[-1]
    print(f"\n## one accepted candidate in a repository with {few.refs:,} vs {many.refs:,} trial refs "
          f"(median of {candidates})\n")
    print(f"| step | {few.refs:,} refs ms | {many.refs:,} refs ms | ratio |")
    print("|---|---|---|---|")
    for label, key in REFS_STEPS:
        a, b = _median_ms(few.seconds[key]), _median_ms(many.seconds[key])
        print(f"| {label} | {a:.1f} | {b:.1f} | {b / a:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[16, 256, 1024])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--refs", type=int, default=10_000)
    parser.add_argument("--candidates", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="16 workers for 5 s, 1,000 refs: keeps it working")
    parser.add_argument("--profile", action="store_true",
                        help="instead: where Coordinator.report spends its time (cProfile, first --workers count)")
    args = parser.parse_args()
    if args.profile:
        print_report_profile(args.workers[0], 5.0 if args.quick else args.seconds)
        return
    counts, seconds, refs, candidates = ([16], 5.0, 1_000, 3) if args.quick else \
        (args.workers, args.seconds, args.refs, args.candidates)
    print(f"# coordinator_capacity: {platform.node()}, git {_git_version()}, {time.strftime('%Y-%m-%d')}\n")
    print_capacity([measure(count, seconds) for count in counts], seconds)
    print_refs(measure_refs([0, refs], candidates), candidates)


def print_report_profile(workers: int, seconds: float) -> None:
    """The share of Coordinator.report's time spent in git processes and in results.tsv."""
    profile = cProfile.Profile()
    report = Coordinator.report

    def profiled(self: Coordinator, outcome: TrialOutcome) -> None:
        profile.enable()
        try:
            report(self, outcome)
        finally:
            profile.disable()
    Coordinator.report = profiled  # type: ignore[method-assign]
    try:
        row = measure(workers, seconds)
    finally:
        Coordinator.report = report  # type: ignore[method-assign]
    stats = pstats.Stats(profile).stats  # (file, line, name) -> (calls, ..., tottime, cumtime, ...)
    total = sum(cum for (_f, _l, name), (*_, cum, _callers) in stats.items() if name == "report")
    parts = {"git processes (git.cmd execute)": ("cmd.py", "execute"),
             "results.tsv (RunDirectory.write_results)": ("rundir.py", "write_results"),
             "ledger (Coordinator._record)": ("service.py", "_record")}
    print(f"## where Coordinator.report spends its time: {workers} workers, {row.results} reports\n")
    print("| part | seconds | share |\n|---|---|---|")
    for label, (file, name) in parts.items():
        spent = sum(cum for (f, _l, n), (*_, cum, _callers) in stats.items() if f.endswith(file) and n == name)
        print(f"| {label} | {spent:.2f} | {100 * spent / total:.0f}% |")
    print(f"| all of report | {total:.2f} | 100% |")


def _git_version() -> str:
    return subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.split()[-1]


if __name__ == "__main__":
    main()
