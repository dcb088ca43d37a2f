"""The swarm's decisions in virtual time: how fast N workers make research, from 1 to 1,024.

The real coordinator (`coordinator.service.Coordinator`: its state, acceptance, scheduling,
confirmation, rebasing and merging) runs over an in-memory run record and a model of the pool,
on a virtual clock. Simulated workers call it as the real ones do; an evaluation takes virtual
time and returns the target's true value plus Gaussian noise. No Ray, git or subprocess in the
loop: a heap of timed events (simpler than SimPy for one kind of process, and as fast).

Targets, given as Python functions with known truth:
- quadratic, deceptive: examples/quadratic and examples/deceptive, their own true_score;
- manyknob: examples/manyknob, 30 constants, separable but for three interacting pairs;
- autoresearch: an LLM-like proposer whose changes help with probability 3% (1 to 3 noise sd)
  and otherwise hurt (by |N(0, 2 sd)|), each on one of 40 lines of a file.
Proposals: `mutate`'s real move generator (workers.proposers.mutate) on the rendered train.py,
or the LLM-like one.

Per target and worker count, medians over seeds:
- S_N = T_sequential(q*) / T_swarm(q*): q* is the final true value of the sequential keep-if-lower
  loop (one worker, autoresearch's rule) after its budget, T the virtual time its incumbent
  first reached q*;
- the swarm's true value after as many evaluations as the sequential loop's budget;
- false accepts: accepted commits truly no better than the best they replaced, of all accepts;
- the share of evaluations spent on baselines, confirmations, stale re-runs and unions.

    .venv/bin/python bench/simulate.py                 # the table in bench/RESULTS.md
    .venv/bin/python bench/simulate.py --quick         # seconds: 2 seeds, 1 and 8 workers
    .venv/bin/python bench/simulate.py --null          # the null target: accepts per run
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import hashlib
import heapq
import importlib.util
import math
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coordinator.service import Coordinator  # noqa: E402
from coordinator.state import SwarmState  # noqa: E402
from swarm.core.config import SwarmConfig  # noqa: E402
from swarm.core.events import Judged, LedgerEvent, RunStarted, TrialFinished, TrialStarted  # noqa: E402
from swarm.core.values import EVALUATED_STATUSES, CandidateInfo, TrialOutcome, WorkerSite, WorkUnit  # noqa: E402
from workers.loop import PROPOSAL_ATTEMPTS  # noqa: E402
from workers.proposers.mutate import TWO_AT_ONCE_SHARE, Tunable, find_tunables, step  # noqa: E402

Value = float | int | str
Content = tuple[tuple[str, Any], ...]  # a commit's content: sorted (key, value) pairs
FILE = "train.py"


# -- targets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    start: Content
    true_score: Callable[[Mapping[str, Any]], float]
    noise: float
    proposer: str  # "mutate" or "llm"
    budget: int  # the sequential loop's evaluations
    help_rate: float = 0.03  # llm: the share of proposals that truly help


def _module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"sim_{path.parent.name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _constants(path: Path) -> Content:
    """The UPPER_CASE constants of an example's train.py, in file order."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id.isupper():
            found[node.targets[0].id] = ast.literal_eval(node.value)
    return tuple(found.items())


def example(name: str, budget: int) -> Target:
    folder = ROOT / "examples" / name
    harness = _module(folder / "prepare.py")
    start = _constants(folder / "train.py")
    keys = [k for k, _ in start]
    if hasattr(harness, "KNOBS"):  # manyknob scores a mapping of its knobs
        return Target(name, start, harness.true_score, harness.NOISE, "mutate", budget)
    return Target(name, start, lambda v: harness.true_score(*(v[k] for k in keys)), harness.NOISE, "mutate", budget)


LINES = 40


def autoresearch_like(budget: int, help_rate: float = 0.03) -> Target:
    """A file of LINES lines, each holding the effect of the change last made to it (0 at the
    start); the score is what the effects take off 1.0. Changes are made by `LlmLike`."""
    start = tuple((f"L{i:02d}", 0.0) for i in range(LINES))
    return Target("autoresearch", start, lambda v: 1.0 - math.fsum(v.values()), 0.05, "llm", budget, help_rate)


def null_target() -> Target:
    """Thirty constants that do nothing: no change can help (the false-accept check)."""
    start = tuple((f"K{i:02d}", 1.0) for i in range(1, 31))
    return Target("null", start, lambda v: 1.0, 0.05, "mutate", 60)


# -- proposers ------------------------------------------------------------------------------


def render(content: Content) -> str:
    """The train.py a mutate proposer reads: one constant a line, no blank lines between."""
    return "".join(f"{k} = {v!r}\n" for k, v in content)


def parse(text: str) -> Content:
    return tuple((k, ast.literal_eval(v)) for k, _, v in (line.partition(" = ") for line in text.splitlines()))


class Mutate:
    """The mutate proposer's own choice of constants and moves (`step`), with the constants of
    each content parsed once (parsing is most of a proposal's time, and the simulated swarm
    proposes on few contents many times)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def propose(self, content: Content) -> tuple[Content, str] | None:
        tunables = _tunables(content)
        if not tunables:
            return None
        count = 2 if len(tunables) > 1 and self.rng.random() < TWO_AT_ONCE_SHARE else 1
        moves = {t.name: (t.value, step(t, self.rng)) for t in self.rng.sample(tunables, count)}
        changed = tuple((k, moves[k][1] if k in moves else v) for k, v in content)
        return changed, "; ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in sorted(moves.items()))


@functools.lru_cache(maxsize=100_000)
def _tunables(content: Content) -> list[Tunable]:
    return find_tunables(FILE, render(content))


class LlmLike:
    """Each proposal changes one line; it helps (by 1 to 3 noise sd) with probability
    `help_rate`, and otherwise hurts (by |N(0, 2 sd)|)."""

    def __init__(self, seed: int, noise: float, help_rate: float) -> None:
        self.rng, self.noise, self.help_rate = random.Random(seed), noise, help_rate

    def propose(self, content: Content) -> tuple[Content, str] | None:
        line = self.rng.randrange(LINES)
        helps = self.rng.random() < self.help_rate
        delta = (self.rng.uniform(1.0, 3.0) if helps else -abs(self.rng.gauss(0.0, 2.0))) * self.noise
        values = dict(content)
        key = f"L{line:02d}"
        values[key] = round(values[key] + delta, 9)
        return tuple(values.items()), f"{key} {'+' if delta > 0 else ''}{delta:.4f}"


# -- the pool and the run record, in memory -------------------------------------------------


@dataclass(frozen=True)
class Replay:
    commit: str | None
    tree: str | None


@dataclass(frozen=True)
class Union:
    commit: str | None
    tree: str | None
    included: tuple[int, ...]
    conflicted: tuple[int, ...]
    clashed: tuple[int, ...] = ()


class ModelPool:
    """Commits as contents; trees as hashes of them. A change replays onto another best key by
    key (a constant a line: changes to different lines combine, adjacent or not)."""

    def __init__(self, start: Content) -> None:
        self.content: dict[str, Content] = {}  # commit -> content
        self.parent: dict[str, str | None] = {}
        self.by_tree: dict[str, Content] = {}
        self.root = self.commit(start, None)

    @staticmethod
    def tree_of(content: Content) -> str:
        return hashlib.blake2b(repr(content).encode(), digest_size=10).hexdigest()

    def commit(self, content: Content, parent: str | None) -> str:
        commit = f"c{len(self.content):07d}"
        self.content[commit], self.parent[commit] = content, parent
        self.by_tree[self.tree_of(content)] = content
        return commit

    def show_best(self, commit: str) -> None:
        pass

    def keep_trial(self, trial_id: str, commit: str, bundle: bytes | None) -> bool:
        return commit in self.content

    def changed_paths(self, parent: str, commit: str) -> list[str]:
        return [FILE]

    def commit_best(self, tree: str, parent: str, message: str) -> str:
        return self.commit(self.by_tree[tree], parent)

    def replay(self, commit: str, onto: str, message: str, ref: str) -> Replay:
        parent = self.parent[commit]
        assert parent is not None
        merged = self.union([(commit, parent)], onto, message, ref)
        return Replay(merged.commit, merged.tree)

    def union(self, parts: list[tuple[str, str]], onto: str, message: str, ref: str) -> Union:
        content, included, conflicted, clashed = self.content[onto], [], [], []
        for index, (commit, parent) in enumerate(parts):
            merged = three_way(self.content[parent], self.content[commit], content)
            if merged is not None:
                content = merged
                included.append(index)
            elif three_way(self.content[parent], self.content[commit], self.content[onto]) is None:
                conflicted.append(index)
            else:
                clashed.append(index)
        if not included:
            return Union(None, None, (), tuple(conflicted), tuple(clashed))
        return Union(self.commit(content, onto), self.tree_of(content), tuple(included), tuple(conflicted),
                     tuple(clashed))

    def keep(self, ref: str, commit: str) -> None:
        pass

    def bundle(self, commit: str, have: str | None) -> bytes | None:
        return None

    def open_merge_worktree(self, at: str) -> None:
        pass

    def close(self) -> None:
        pass


def three_way(base: Content, ours: Content, theirs: Content) -> Content | None:
    """`ours`' changes to `base` applied on `theirs`; None where both changed one key."""
    b, o, t = dict(base), dict(ours), dict(theirs)
    merged = dict(t)
    for key, value in o.items():
        if value != b.get(key):
            if t.get(key) != b.get(key) and t.get(key) != value:
                return None
            merged[key] = value
    return tuple(merged.items())


class MemoryRecord:
    """The ledger in memory, stamped with the virtual clock; it keeps what the figures need."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.accepts: list[tuple[float, str, str]] = []  # (time, trial, its best commit)
        self.kinds: Counter[str] = Counter()  # evaluations, by what they were for
        self._kind_of: dict[str, str] = {}

    def record(self, event: LedgerEvent) -> LedgerEvent:
        stamped = event.model_copy(update={"ts": self.clock()})
        if isinstance(stamped, Judged) and stamped.verdict == "accepted" and stamped.best_commit:
            self.accepts.append((stamped.ts, stamped.trial, stamped.best_commit))
        if isinstance(stamped, TrialStarted):
            self._kind_of[stamped.trial] = _kind(stamped)
        if isinstance(stamped, TrialFinished) and stamped.status in EVALUATED_STATUSES:
            self.kinds[self._kind_of[stamped.trial]] += 1
        return stamped

    def one_sync(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    def write_log(self, trial_id: str, text: str) -> None:
        pass

    def write_results(self, state: SwarmState) -> None:
        pass

    def close(self) -> None:
        pass


def _kind(event: TrialStarted) -> str:
    if event.kind != "candidate":
        return event.kind
    if event.of:
        return "stale re-run"
    return "union" if event.parts else "candidate"


# -- one simulated run ----------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    workers: int
    durations: str  # fixed | uniform | lognormal
    acceptance: dict[str, Any]
    seed: int
    max_evaluations: int
    max_time: float
    goal: float | None = None  # stop once the incumbent's true value reaches it


@dataclass
class Outcome:
    accepts: list[tuple[float, float, float]] = field(default_factory=list)  # (time, true before, true after)
    evaluations_at: list[tuple[float, int]] = field(default_factory=list)  # (time, evaluations) per finish
    kinds: Counter[str] = field(default_factory=Counter)
    start_true: float = 0.0
    end_time: float = 0.0
    evaluations: int = 0

    def true_at_time(self, when: float) -> float:
        value = self.start_true
        for t, _before, after in self.accepts:
            if t > when:
                break
            value = after
        return value

    def true_after(self, evaluations: int) -> float:
        """The incumbent's true value when the `evaluations`-th evaluation finished."""
        at = next((t for t, n in self.evaluations_at if n >= evaluations), math.inf)
        return self.true_at_time(at)

    def first_reach(self, goal: float) -> float:
        if self.start_true <= goal:
            return 0.0
        return next((t for t, _before, after in self.accepts if after <= goal + 1e-12), math.inf)


def _duration(kind: str, rng: random.Random) -> float:
    if kind == "fixed":
        return 1.0
    if kind == "uniform":
        return rng.uniform(0.8, 1.2)
    return math.exp(rng.gauss(-0.5, 1.0))  # lognormal, sigma 1, mean 1


def _config(target: Target, settings: Settings) -> SwarmConfig:
    return SwarmConfig.model_validate({
        "name": f"sim-{target.name}",
        "target": {"repo": "simulated", "editable": [FILE], "run": "simulated",
                   "metric": {"name": "score", "direction": "minimize"}, "budget_s": 1, "timeout_s": 1},
        "workers": {"count": settings.workers},
        "acceptance": settings.acceptance,
        "stop": {"max_trials": 10**9},
    })


def simulate(target: Target, settings: Settings) -> Outcome:
    now = [0.0]
    clock = lambda: now[0]  # noqa: E731  (the virtual clock)
    rng = random.Random(settings.seed)
    pool = ModelPool(target.start)
    record = MemoryRecord(clock)
    state = SwarmState()
    root = pool.root
    state.apply(RunStarted(commit=root, tree=pool.tree_of(target.start), config={}))
    coordinator = Coordinator.over(_config(target, settings), "sim", record, pool, state, clock)
    proposers = [Mutate(settings.seed * 10_007 + i) if target.proposer == "mutate"
                 else LlmLike(settings.seed * 10_007 + i, target.noise, target.help_rate)
                 for i in range(settings.workers)]
    out = Outcome(start_true=target.true_score(dict(target.start)))
    site = WorkerSite(hardware="sim")
    queue: list[tuple[float, int, int, TrialOutcome | None]] = []
    order = 0

    def schedule(at: float, worker: int, report: TrialOutcome | None) -> None:
        nonlocal order
        order += 1
        heapq.heappush(queue, (at, order, worker, report))

    def act(worker: int) -> None:
        """The worker asks for work until it has something that takes time."""
        name = f"w{worker}"
        for _ in range(100):
            unit = coordinator.next_work(name, None, site)
            if unit.action == "stop":
                return
            if unit.action == "wait":
                schedule(now[0] + max(unit.wait_s, 0.01), worker, None)
                return
            trial_id, commit = _start(unit, name, proposers[worker])
            if trial_id is None or commit is None:
                continue
            try:  # a value the harness refuses (a knob made negative) crashes the experiment
                metric = target.true_score(dict(pool.content[commit])) + rng.gauss(0.0, target.noise)
                report = TrialOutcome(trial_id, name, "ok", metric, hardware="sim")
            except ValueError as exc:
                report = TrialOutcome(trial_id, name, "crash", hardware="sim", reason=str(exc))
            schedule(now[0] + _duration(settings.durations, rng), worker, report)
            return

    def _start(unit: WorkUnit, name: str, proposer: Mutate | LlmLike) -> tuple[str | None, str | None]:
        if unit.action == "evaluate":
            return unit.trial_id, unit.commit
        assert unit.commit is not None
        parent = unit.commit
        for _ in range(PROPOSAL_ATTEMPTS):  # as the worker does: each attempt on the clean parent
            made = proposer.propose(pool.content[parent])
            if made is None:
                coordinator.proposal_failed(name, "nothing to propose")
                return None, None
            content, hypothesis = made
            if pool.tree_of(content) not in unit.avoid:
                break
        else:
            coordinator.proposal_failed(name, f"{PROPOSAL_ATTEMPTS} proposals in a row repeated changes")
            return None, None
        commit = pool.commit(content, parent)
        admission = coordinator.begin_candidate(CandidateInfo(name, parent, commit, pool.tree_of(content), hypothesis))
        return (admission.trial_id, commit) if admission.refusal is None else (None, None)

    def true_of(commit: str) -> float:
        return target.true_score(dict(pool.content[commit]))

    for worker in range(settings.workers):
        act(worker)
    seen_accepts = 0
    best_true = out.start_true
    while queue:
        at, _order, worker, report = heapq.heappop(queue)
        if at > settings.max_time:
            break
        now[0] = at
        if report is not None:
            coordinator.report(report)
            out.evaluations += 1
            out.evaluations_at.append((at, out.evaluations))
        for when, _trial, commit in record.accepts[seen_accepts:]:
            after = true_of(commit)
            out.accepts.append((when, best_true, after))
            best_true = after
        seen_accepts = len(record.accepts)
        done = out.evaluations >= settings.max_evaluations or (
            settings.goal is not None and best_true <= settings.goal + 1e-12
            and out.evaluations >= min(settings.max_evaluations, 10**9))
        if done:
            break
        act(worker)
    out.end_time = now[0]
    out.kinds = record.kinds
    return out


# -- the table ------------------------------------------------------------------------------

KEEP_IF_LOWER = {"noise_k": 0.0, "baseline_runs": 1, "confirm_runs": 0}
MAX_EVALUATIONS = 60_000  # a swarm that has not reached q* by then stops (at 1,024 workers: S < 10)
SWARM = {"baseline_runs": 2, "false_accept": 0.005, "max_runs": 4}  # configs/manyknob.yaml's


@dataclass(frozen=True)
class Cell:
    target: str
    workers: int
    durations: str
    seed: int


@dataclass(frozen=True)
class Result:
    cell: Cell
    speedup: float  # inf never; 0 when the swarm never reached q*
    q_star: float
    seq_at_budget: float
    swarm_at_budget: float
    accepts: int
    false_accepts: int
    kinds: dict[str, int]
    t_sequential: float  # virtual time (mean trials) the sequential loop took to q*
    t_swarm: float  # and the swarm (inf: never)
    steps_to_q: int  # accepts the swarm made until it reached q* (its rounds on the critical path)


def run_cell(target: Target, cell: Cell) -> Result:
    sequential = simulate(target, Settings(1, cell.durations, KEEP_IF_LOWER, cell.seed, target.budget, math.inf))
    q_star = sequential.true_at_time(math.inf)
    t_seq = sequential.first_reach(q_star)
    horizon = sequential.end_time
    swarm = simulate(target, Settings(cell.workers, cell.durations, SWARM, cell.seed, MAX_EVALUATIONS,
                                      horizon, goal=q_star))
    t_swarm = swarm.first_reach(q_star)
    equal = swarm
    if swarm.evaluations < target.budget:  # it reached q* early: go on to the equal-evaluations point
        equal = simulate(target, Settings(cell.workers, cell.durations, SWARM, cell.seed, target.budget, horizon))
    false = sum(1 for _t, before, after in swarm.accepts if after >= before)
    steps = sum(1 for t, _before, _after in swarm.accepts if t <= t_swarm)
    return Result(cell, t_seq / t_swarm if t_swarm > 0 else math.inf, q_star, q_star,
                  equal.true_after(target.budget), len(swarm.accepts), false, dict(swarm.kinds),
                  t_seq, t_swarm, steps)


TARGETS: dict[str, Callable[[], Target]] = {
    "quadratic": lambda: example("quadratic", 200),
    "deceptive": lambda: example("deceptive", 200),
    "manyknob": lambda: example("manyknob", 600),
    "autoresearch": lambda: autoresearch_like(700),
}


def _one(args: tuple[str, Cell]) -> Result:
    return run_cell(TARGETS[args[0]](), args[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 1 and 8 workers, two targets")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--workers", default="1,8,64,256,1024")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--durations", default="uniform", help="fixed, uniform (+-20%%) or lognormal (sigma 1)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--null", action="store_true", help="the null target: accepts in 10 runs of 60 evaluations")
    args = parser.parse_args()
    if args.null:
        print_null()
        return
    seeds, workers, targets = args.seeds, [int(w) for w in args.workers.split(",")], args.targets.split(",")
    if args.quick:
        seeds, workers, targets = 2, [1, 8], ["quadratic", "manyknob"]
    cells = [(t, Cell(t, n, args.durations, s)) for t in targets for n in workers for s in range(seeds)]
    started = time.perf_counter()
    results = []
    with ProcessPoolExecutor(max_workers=args.processes) as executor:
        for done, result in enumerate(executor.map(_one, cells), 1):  # in order: a cell's line once it is in
            results.append(result)
            print(f"# {done}/{len(cells)} {result.cell.target} {result.cell.workers} seed {result.cell.seed}: "
                  f"S_N {result.speedup:.2f} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    print(f"# simulate: {args.durations} trial times, {seeds} seeds; {platform.node()}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}, {time.perf_counter() - started:.0f} s\n")
    print("| target | workers | S_N (median) | S_N (min) | q* | true value at equal evaluations: swarm "
          "(sequential) | accepts | false accepts | evaluations to q*: baselines | confirmations | stale re-runs "
          "| unions | time to q*: sequential / swarm | swarm's accepts to q* | time per accept |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for target in targets:
        for n in workers:
            rows = [r for r in results if r.cell.target == target and r.cell.workers == n]
            kinds = Counter[str]()
            for r in rows:
                kinds.update(r.kinds)
            total = sum(kinds.values()) or 1
            speedups = [r.speedup for r in rows]
            share = {k: f"{100 * kinds[k] / total:.0f}%" for k in ("baseline", "confirm", "stale re-run", "union")}
            print(f"| {target} | {n} | {statistics.median(speedups):.2f} | {min(speedups):.2f} "
                  f"| {statistics.median(r.q_star for r in rows):.4f} "
                  f"| {statistics.median(r.swarm_at_budget for r in rows):.4f} "
                  f"({statistics.median(r.seq_at_budget for r in rows):.4f}) "
                  f"| {sum(r.accepts for r in rows)} | {sum(r.false_accepts for r in rows)} "
                  f"| {share['baseline']} | {share['confirm']} | {share['stale re-run']} | {share['union']} "
                  f"| {_median_time(r.t_sequential for r in rows)} / {_median_time(r.t_swarm for r in rows)} "
                  f"| {statistics.median(r.steps_to_q for r in rows):.0f} "
                  f"| {_median_time(r.t_swarm / max(r.steps_to_q, 1) for r in rows)} |")


def _median_time(values: Iterable[float]) -> str:
    """Virtual time in mean trial durations; 'never' when most runs never got there."""
    middle = statistics.median(values)
    return "never" if math.isinf(middle) else f"{middle:.1f}"


def print_null(runs: int = 10, evaluations: int = 60, workers: int = 4) -> None:
    """Accepts on a target where no change can help (every one a false accept): the swarm's
    test with two baselines, against keep-if-lower."""
    target = null_target()
    print(f"# the null target: {runs} runs of {evaluations} evaluations, {workers} workers; noise "
          f"{target.noise}\n\n| rule | accepts per run | in all |\n|---|---|---|")
    for name, acceptance, n in (("swarm (false_accept 0.005, 2 baselines)", SWARM, workers),
                                ("keep-if-lower (one worker)", KEEP_IF_LOWER, 1)):
        counts = [len(simulate(target, Settings(n, "uniform", acceptance, seed, evaluations, math.inf)).accepts)
                  for seed in range(runs)]
        print(f"| {name} | {', '.join(map(str, counts))} | {sum(counts)} |")


if __name__ == "__main__":
    main()
