"""Search efficiency on noisy targets whose true optimum is known: the swarm against the
sequential autoresearch loop, best-of-N, Optuna's TPE and Ray Tune's PBT, in one process run.

Question: with the same number of evaluations, how fast (wall seconds, evaluations) does each
search's incumbent reach a good true (noise-free) value, where does it end, and how often does
it accept a change that is truly worse than what it replaced? Goal (issue): the swarm with 8
workers reaches the sequential loop's final true value in at most a fifth of the sequential
loop's wall time, and accepts no regression where keep-if-lower accepts several.

Targets: examples/quadratic (noise 0.02, optimum 0), examples/manyknob (thirty constants on
adjacent lines, mostly separable, noise 0.05; optimum 0) and, with --targets, examples/deceptive
(a plateau, two constants that must move together, noise 0.03 the size of the last gains). Every
evaluation sleeps the same budget, then scores with the target's own noise: the swarm and the
sequential loop run the target's train.py in a subprocess per trial (their git and process
overhead is their cost); the others call the target's prepare.true_score and add the same
Gaussian noise in-process.

Contenders, all on one local Ray instance, each given the same number of evaluations (the
swarm's baseline and confirmation runs count):
- swarm: run_swarm with the target's config, 8 workers, its acceptance (the statistical test
  and unions, false_accept 0.005, 2 baselines), the mutate proposer seeded with the seed. It runs for the
  sequential loop's wall time on the same seed (it goes second), so one run answers both
  questions: the table counts its first N evaluations, the goal's ratio its whole run.
- sequential: the same machinery with 1 worker, proposals made only after each trial, and
  acceptance {min_delta 0, noise_k 0, baseline_runs 1, confirm_runs 0}: keep if lower.
- best-of-N: the baseline, then N-1 mutations of it (one constant perturbed as the mutate
  proposer does; a repeat is perturbed again on top, as the workers grow repeats), 8 at a time;
  the best measured wins. No hill climbing.
- TPE: Optuna's TPESampler(seed), 8 threads, the baseline enqueued first; floats and ints
  log-uniform in [start/16, start*16], choices categorical.
- PBT: Ray Tune's PopulationBasedTraining, population 8, perturbation_interval 1 (one
  evaluation per training iteration), the baseline as the first member, the others drawn from
  the same space as TPE; the best measured point wins.

The incumbent is, for swarm and sequential, the latest accepted commit (its true_score from the
ledger); for the others, the best measured point. Reported per contender, medians over seeds:
the incumbent's true value at the end of the budget, evaluations and seconds until it first
reaches the target's goal, and accepted changes and false accepts (an incumbent change to a
truly worse point than its parent) summed over seeds. Also: seconds for the swarm to reach the
sequential loop's final true value, as a ratio to the sequential loop's wall time for its budget,
with the evaluations it took, its true value a fifth of that time in, and its evaluations in all.

Budget (full run): 64 evaluations of 3 s each (long enough that 8 workers on 2 cores run about
8 times the sequential loop's trials), 5 seeds, quadratic and manyknob: about 90 minutes on a
2-core VM (the sequential loop and the swarm are most of it). --quick: one seed, the quadratic target only,
16 evaluations of 0.2 s, 4 workers and a population of 4 (keeps the benchmark working).

    python bench/search_efficiency.py            # the figures in bench/RESULTS.md
    python bench/search_efficiency.py --quick    # under a minute
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import ray

from swarm.core.config import SwarmConfig, load_config
from swarm.core.values import EVALUATED_STATUSES
from swarm.shell.driver import RunOptions, run_swarm
from workers.proposers.mutate import Tunable, apply_value, find_tunables, perturb

ROOT = Path(__file__).resolve().parents[1]
CONTENDERS = ("swarm", "sequential", "best-of-N", "TPE", "PBT")
Value = int | float | str
Point = tuple[Value, ...]  # the tunable constants' values, in train.py's order
SPACE_SPAN = 16.0  # TPE's and PBT's bounds: start / 16 to start * 16
UNLIMITED_TRIALS = 10**9  # a run cut by time only
GROW_ATTEMPTS = 6  # as the workers' PROPOSAL_ATTEMPTS: a repeat is perturbed again on top


@dataclass(frozen=True)
class Target:
    name: str
    goal: float  # a true value counted as "reached": about 5 noise sigmas above the optimum

    @property
    def repo(self) -> Path:
        return ROOT / "examples" / self.name

    @property
    def config(self) -> Path:
        return ROOT / "configs" / f"{self.name}.yaml"


TARGETS = (Target("quadratic", goal=0.1), Target("manyknob", goal=0.3), Target("deceptive", goal=0.15))


# -- pure: incumbent histories and what they say ----------------------------------------------

@dataclass(frozen=True)
class Change:
    """The incumbent as it became after `trials` finished evaluations, `seconds` in."""

    trials: int
    seconds: float
    true: float
    parent_true: float  # the true value of the incumbent it replaced


@dataclass(frozen=True)
class Evaluation:
    seconds: float  # since the contender started, when its result was in
    point: Point
    score: float
    true: float


@dataclass
class Outcome:
    contender: str
    history: list[Change]  # the start first (trials 0), then each incumbent change
    finished: list[float] = field(default_factory=list)  # seconds at which evaluations finished
    not_keep_if_lower: list[str] = field(default_factory=list)  # sequential: verdicts that break the rule


def incumbent_history(start: Point, start_true: float, evaluations: Iterable[Evaluation]) -> list[Change]:
    """The best measured point as evaluations come in; a change whenever it is a new point."""
    history = [Change(0, 0.0, start_true, start_true)]
    best_point, best_score = start, math.inf
    for trials, ev in enumerate(sorted(evaluations, key=lambda e: e.seconds), start=1):
        if ev.score < best_score:
            best_score = ev.score
            if ev.point != best_point:
                history.append(Change(trials, ev.seconds, ev.true, history[-1].true))
                best_point = ev.point
    return history


def within_budget(history: list[Change], budget: int) -> list[Change]:
    """The changes made with at most `budget` evaluations finished."""
    return [c for c in history if c.trials <= budget]


def first_reaching(history: list[Change], goal: float) -> Change | None:
    """The first change whose true value is at or below goal (the start counts)."""
    return next((c for c in history if c.true <= goal), None)


def false_accepts(history: list[Change]) -> int:
    """Incumbent changes to a point truly worse than the one it replaced."""
    return sum(1 for c in history[1:] if c.true > c.parent_true)


def ledger_history(events: list[dict[str, Any]], t0: float, start_true: float) -> Outcome:
    """The accepted commits of a swarm run, each with its own and its parent's true_score."""
    tree_of: dict[str, str] = {}  # commit -> tree
    true_of: dict[str, float] = {}  # tree -> true_score
    trial_tree: dict[str, str] = {}
    history = [Change(0, 0.0, start_true, start_true)]
    finished: list[float] = []
    for e in events:
        if e["event"] == "run_started":
            tree_of[e["commit"]] = e["tree"]
            true_of[e["tree"]] = start_true
        elif e["event"] == "trial_started":
            tree_of[e["commit"]] = trial_tree[e["trial"]] = e["tree"]
        elif e["event"] == "trial_finished" and e["status"] in EVALUATED_STATUSES:
            finished.append(e["ts"] - t0)
            if "true_score" in e.get("metrics", {}):
                true_of[trial_tree[e["trial"]]] = e["metrics"]["true_score"]
        elif e["event"] == "verdict" and e["verdict"] == "accepted":
            tree = tree_of[e["best_commit"]] = trial_tree[e["trial"]]
            parent = _parent_of(events, e["trial"])
            history.append(Change(len(finished), e["ts"] - t0, true_of[tree], true_of[tree_of[parent]]))
    return Outcome("", history, finished)


def _parent_of(events: list[dict[str, Any]], trial: str) -> str:
    return next(e["parent"] for e in events if e["event"] == "trial_started" and e["trial"] == trial)


def keep_if_lower_violations(events: list[dict[str, Any]]) -> list[str]:
    """Verdicts of a run that are not plain keep-if-lower on single measurements: one baseline
    run, then each candidate accepted exactly when its one run is lower than best's one run."""
    kind: dict[str, str] = {}
    metric: dict[str, float] = {}
    best_run: float | None = None
    wrong = []
    for e in events:
        if e["event"] == "trial_started":
            kind[e["trial"]] = e["kind"]
            if e["kind"] == "confirm" or (e["kind"] == "baseline" and best_run is not None):
                wrong.append(f"{e['trial']}: a {e['kind']} run")
        elif e["event"] == "trial_finished" and e.get("metric") is not None:
            metric[e["trial"]] = e["metric"]
            if kind[e["trial"]] == "baseline":
                best_run = e["metric"]
        elif e["event"] == "verdict":
            lower = best_run is not None and metric[e["trial"]] < best_run
            if (e["verdict"] == "accepted") != lower:
                wrong.append(f"{e['trial']}: {e['verdict']} at {metric[e['trial']]} against {best_run}")
            if e["verdict"] == "accepted":
                best_run = metric[e["trial"]]
    return wrong


def median_or_inf(values: Iterable[float | None]) -> float:
    """Median where None (never reached) counts as infinitely late."""
    return statistics.median(math.inf if v is None else v for v in values)


@dataclass(frozen=True)
class Row:
    contender: str
    final: float
    trials_to_goal: float
    seconds_to_goal: float
    reached: int
    budget_seconds: float
    accepts: int
    false_accepts: int
    seeds: int


def summarize(contender: str, outcomes: list[Outcome], goal: float, budget: int) -> Row:
    """One table row from a contender's outcomes over seeds, each cut at the trial budget."""
    cut = [within_budget(o.history, budget) for o in outcomes]
    hits = [first_reaching(h, goal) for h in cut]
    return Row(contender,
               final=statistics.median(h[-1].true for h in cut),
               trials_to_goal=median_or_inf(h.trials if h else None for h in hits),
               seconds_to_goal=median_or_inf(h.seconds if h else None for h in hits),
               reached=sum(1 for h in hits if h),
               budget_seconds=statistics.median(_budget_seconds(o, budget) for o in outcomes),
               accepts=sum(len(h) - 1 for h in cut),
               false_accepts=sum(false_accepts(h) for h in cut),
               seeds=len(outcomes))


def _budget_seconds(outcome: Outcome, budget: int) -> float:
    """When the last evaluation of the budget finished (the run's wall time for it)."""
    done = sorted(outcome.finished)
    return done[min(budget, len(done)) - 1] if done else math.nan


def within_seconds(history: list[Change], seconds: float) -> list[Change]:
    """The changes made in the first `seconds` of a run."""
    return [c for c in history if c.seconds <= seconds]


@dataclass(frozen=True)
class Ratio:
    """The goal's question for one seed, asked of a swarm run given the sequential loop's wall time."""

    final: float  # the sequential loop's final true value for its evaluation budget
    wall: float  # the sequential loop's wall seconds for that budget
    seconds: float | None  # when the swarm's incumbent first reached `final` (None: not within `wall`)
    evaluations: int | None  # the swarm's finished evaluations by then
    at_fifth: float  # the swarm incumbent's true value a fifth of `wall` in
    swarm_evaluations: int  # the swarm's evaluations finished within `wall`


def time_ratio(swarm: Outcome, sequential: Outcome, budget: int) -> Ratio:
    """The swarm run (cut at the sequential loop's wall time, not at the evaluation budget)
    against the sequential loop's final value and wall time."""
    final = within_budget(sequential.history, budget)[-1].true
    wall = _budget_seconds(sequential, budget)
    hit = first_reaching(within_seconds(swarm.history, wall), final)
    at_fifth = within_seconds(swarm.history, wall / 5) or swarm.history[:1]  # wall is nan: no evaluations
    return Ratio(final, wall, hit.seconds if hit else None, hit.trials if hit else None, at_fifth[-1].true,
                 sum(1 for f in swarm.finished if f <= wall))


def format_table(rows: list[Row], goal: float) -> list[str]:
    lines = [f"| contender | median final true value | median trials to {goal:g} | median seconds "
             f"to {goal:g} | seeds reaching {goal:g} | median wall s for the budget | accepts "
             "| false accepts | false-accept rate |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rate = f"{r.false_accepts / r.accepts:.0%}" if r.accepts else "n/a"
        lines.append(f"| {r.contender} | {r.final:.4f} | {_num(r.trials_to_goal, '.0f')} "
                     f"| {_num(r.seconds_to_goal, '.1f')} | {r.reached}/{r.seeds} "
                     f"| {r.budget_seconds:.1f} | {r.accepts} | {r.false_accepts} | {rate} |")
    return lines


def _num(value: float, spec: str) -> str:
    return "not reached" if math.isinf(value) else format(value, spec)


def format_ratios(ratios: list[Ratio]) -> list[str]:
    """One line per seed and the median: the goal is a ratio of at most 0.2."""
    lines = []
    for seed, r in enumerate(ratios):
        got = (f"reached it in {r.seconds:.1f} s = {r.seconds / r.wall:.3f}, after {r.evaluations} "
               "evaluations" if r.seconds is not None else "did not reach it in that time")
        lines.append(f"- seed {seed}: sequential final true {r.final:.4f} after {r.wall:.1f} s; swarm "
                     f"{got}; at a fifth of that time its true value was "
                     f"{r.at_fifth:.4f}; it finished {r.swarm_evaluations} evaluations in that time")
    median = median_or_inf(None if r.seconds is None else r.seconds / r.wall for r in ratios)
    lines.append(f"- median ratio (swarm time to the sequential final / sequential wall time): "
                 f"{_num(median, '.3f')} (goal <= 0.2)")
    return lines


# -- the target's own objective, for the in-process contenders ---------------------------------

@dataclass(frozen=True)
class Objective:
    """The target's prepare.true_score over train.py's tunable constants, plus its noise."""

    tunables: tuple[Tunable, ...]
    true_score: Callable[..., float]
    noise: float
    source: str  # train.py as given, to re-read mutated points

    @property
    def start(self) -> Point:
        return tuple(t.value for t in self.tunables)

    def true(self, point: Point) -> float:
        return self.true_score(*point)


def point_scorer(prepare: ModuleType, names: list[str]) -> Callable[..., float]:
    """The target's true_score as a function of a point's values: train.py passes its constants
    to prepare in file order (quadratic, deceptive), or by name (manyknob's KNOBS mapping)."""
    if hasattr(prepare, "KNOBS"):
        return lambda *point: float(prepare.true_score(dict(zip(names, point, strict=True))))
    return lambda *point: float(prepare.true_score(*point))


def load_objective(target: Target) -> Objective:
    source = (target.repo / "train.py").read_text()
    prepare = _load_module(target.repo / "prepare.py")
    tunables = tuple(find_tunables("train.py", source))
    return Objective(tunables, point_scorer(prepare, [t.name for t in tunables]), prepare.NOISE, source)


def _load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_target_{path.parent.name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Evaluator:
    """Costs what a trial costs (a sleep of the budget), then scores with fresh noise."""

    def __init__(self, objective: Objective, budget_s: float, seed: int) -> None:
        self.objective, self.budget_s = objective, budget_s
        self.rng, self.lock = random.Random(seed), threading.Lock()
        self.t0 = time.monotonic()
        self.evaluations: list[Evaluation] = []

    def __call__(self, point: Point) -> float:
        time.sleep(self.budget_s)
        true = self.objective.true(point)
        with self.lock:
            score = true + self.rng.gauss(0.0, self.objective.noise)
            self.evaluations.append(Evaluation(time.monotonic() - self.t0, point, score, true))
        return score

    def outcome(self, contender: str) -> Outcome:
        history = incumbent_history(self.objective.start, self.objective.true(self.objective.start),
                                    self.evaluations)
        return Outcome(contender, history, [e.seconds for e in self.evaluations])


# -- contenders --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Budget:
    evaluations: int
    seconds_each: float
    parallel: int


def loop_config(target: Target, seed: int, workers: int, budget: Budget, keep_if_lower: bool,
                wall_s: float | None = None) -> SwarmConfig:
    """The swarm (default acceptance) or, with keep_if_lower, autoresearch's sequential loop;
    with wall_s, it runs for that many seconds instead of the evaluation budget."""
    overrides: dict[str, Any] = {
        "target.repo": str(target.repo), "target.budget_s": budget.seconds_each,
        "workers.count": workers, "stop.max_trials": budget.evaluations, "proposer.seed": seed,
        # a safety net only: the trial budget ends the run long before
        "stop.hours": budget.evaluations * (budget.seconds_each + 5) / 3600}
    if wall_s is not None:  # (None would mean "leave the config's max_trials as it is")
        overrides |= {"stop.max_trials": UNLIMITED_TRIALS, "stop.hours": wall_s / 3600}
    if keep_if_lower:
        overrides |= {"acceptance.min_delta": 0.0, "acceptance.noise_k": 0.0,
                      "acceptance.baseline_runs": 1, "acceptance.confirm_runs": 0,
                      "workers.prepare_ahead": False}
    return load_config(target.config, overrides)


def run_loop(target: Target, seed: int, workers: int, budget: Budget, scratch: Path,
             keep_if_lower: bool, wall_s: float | None = None) -> Outcome:
    """One run of loop_config's swarm, its incumbent history read from its ledger."""
    config = loop_config(target, seed, workers, budget, keep_if_lower, wall_s)
    run_dir = scratch / f"{target.name}-{'seq' if keep_if_lower else 'swarm'}-{seed}"
    t0 = time.time()
    run_swarm(RunOptions(config, run_dir))
    events = [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]
    objective = load_objective(target)
    outcome = ledger_history(events, t0, objective.true(objective.start))
    outcome.contender = "sequential" if keep_if_lower else "swarm"
    if keep_if_lower:
        outcome.not_keep_if_lower = keep_if_lower_violations(events)
    return outcome


def mutation_of(objective: Objective, rng: random.Random, avoid: set[Point]) -> Point:
    """One constant of the start perturbed as the mutate proposer does; a point already tried
    is perturbed again on top (as workers grow repeats), up to GROW_ATTEMPTS times."""
    source, point = objective.source, objective.start
    for _ in range(GROW_ATTEMPTS):
        tunables = find_tunables("train.py", source)
        chosen = rng.choice(tunables)
        source = apply_value(source, chosen, perturb(chosen, rng))
        point = tuple(t.value for t in find_tunables("train.py", source))
        if point not in avoid:
            break
    return point


def run_best_of_n(target: Target, seed: int, budget: Budget) -> Outcome:
    objective = load_objective(target)
    rng = random.Random(seed)
    points, tried = [objective.start], {objective.start}
    while len(points) < budget.evaluations:
        points.append(mutation_of(objective, rng, tried))
        tried.add(points[-1])
    evaluate = Evaluator(objective, budget.seconds_each, seed)
    with ThreadPoolExecutor(budget.parallel) as pool:
        list(pool.map(evaluate, points))
    return evaluate.outcome("best-of-N")


def search_space(objective: Objective) -> dict[str, tuple[str, Any]]:
    """name -> (kind, bounds or choices): log-uniform around the start, or the choices."""
    space: dict[str, tuple[str, Any]] = {}
    for t in objective.tunables:
        if t.choices:
            space[t.name] = ("choice", list(t.choices))
        elif isinstance(t.value, int):
            space[t.name] = ("int", (max(1, round(t.value / SPACE_SPAN)), max(2, round(t.value * SPACE_SPAN))))
        else:
            low, high = sorted((t.value / SPACE_SPAN, t.value * SPACE_SPAN))
            space[t.name] = ("float", (low, high) if t.value > 0 else (1e-4, 1.0))
    return space


def run_tpe(target: Target, seed: int, budget: Budget) -> Outcome:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objective = load_objective(target)
    space = search_space(objective)
    evaluate = Evaluator(objective, budget.seconds_each, seed)

    def trial_score(trial: optuna.Trial) -> float:
        point = tuple(_suggest(trial, name, kind, spec) for name, (kind, spec) in space.items())
        return evaluate(point)

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial({t.name: t.value for t in objective.tunables})
    study.optimize(trial_score, n_trials=budget.evaluations, n_jobs=budget.parallel)
    return evaluate.outcome("TPE")


def _suggest(trial: Any, name: str, kind: str, spec: Any) -> Value:
    if kind == "choice":
        return trial.suggest_categorical(name, spec)
    if kind == "int":
        return trial.suggest_int(name, *spec, log=True)
    return trial.suggest_float(name, *spec, log=True)


def run_pbt(target: Target, seed: int, budget: Budget, scratch: Path) -> Outcome:
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.search import BasicVariantGenerator

    objective = load_objective(target)
    kinds = search_space(objective)
    space = {name: _tune_domain(tune, kind, spec) for name, (kind, spec) in kinds.items()}
    # PBT's explore step resamples or shifts a list of choices, and scales a numeric domain
    mutations = {name: spec if kind == "choice" else space[name] for name, (kind, spec) in kinds.items()}
    names = list(space)
    log_path = scratch / f"pbt-{target.name}-{seed}.jsonl"
    trainable = _pbt_trainable(str(target.repo / "prepare.py"), names, budget.seconds_each,
                               str(log_path))
    random.seed(seed)  # PBT's explore step draws from the module-level generator
    scheduler = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=1,
                                        hyperparam_mutations=mutations, metric="score", mode="min")
    start = {t.name: t.value for t in objective.tunables}
    tuner = tune.Tuner(
        trainable, param_space=space,
        tune_config=tune.TuneConfig(
            scheduler=scheduler, num_samples=budget.parallel, reuse_actors=True,
            search_alg=BasicVariantGenerator(points_to_evaluate=[start], random_state=seed)),
        run_config=tune.RunConfig(name=f"pbt-{target.name}-{seed}", storage_path=str(scratch / "tune"),
                                  stop=_stopper(tune, log_path, budget.evaluations), verbose=0))
    t0 = time.time()
    tuner.fit()
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    evaluations = [Evaluation(r["ts"] - t0, tuple(r["point"]), r["score"], r["true"]) for r in records]
    evaluations = sorted(evaluations, key=lambda e: e.seconds)[: budget.evaluations]
    history = incumbent_history(objective.start, objective.true(objective.start), evaluations)
    return Outcome("PBT", history, [e.seconds for e in evaluations])


def _tune_domain(tune: Any, kind: str, spec: Any) -> Any:
    if kind == "choice":
        return tune.choice(spec)
    if kind == "int":
        return tune.lograndint(spec[0], spec[1] + 1)
    return tune.loguniform(*spec)


def _pbt_trainable(prepare_path: str, names: list[str], seconds_each: float,
                   log_path: str) -> Callable[[dict[str, Any]], None]:
    """One population member: each training iteration is one evaluation of its config, logged
    to a shared file (one short line per write, so appends from many processes do not mix)."""

    def member(config: dict[str, Any]) -> None:
        from ray import tune

        prepare = _load_module(Path(prepare_path))
        true_score, noise = point_scorer(prepare, names), prepare.NOISE
        rng = random.Random(os.urandom(16))
        point = [config[n] for n in names]
        while True:
            time.sleep(seconds_each)
            true = true_score(*point)
            score = true + rng.gauss(0.0, noise)
            with open(log_path, "a") as log:
                log.write(json.dumps({"ts": time.time(), "point": point, "score": score, "true": true}) + "\n")
            # PBT copies a member by its checkpoint; the config is the whole state here
            with tempfile.TemporaryDirectory() as empty:
                tune.report({"score": score}, checkpoint=tune.Checkpoint.from_directory(empty))

    return member


def _stopper(tune: Any, log_path: Path, limit: int) -> Any:
    """A Tune Stopper that ends the whole experiment once the population made `limit` evaluations."""
    return type("TotalReports", (_TotalReports, tune.Stopper), {})(log_path, limit)


class _TotalReports:
    """The counting half of _stopper (ray.tune is imported only when PBT runs)."""

    def __init__(self, log_path: Path, limit: int) -> None:
        self.log_path, self.limit = log_path, limit

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return self.stop_all()

    def stop_all(self) -> bool:
        if not self.log_path.exists():
            return False
        return len(self.log_path.read_text().splitlines()) >= self.limit


# -- the run -----------------------------------------------------------------------------------

def run_seed(target: Target, seed: int, budget: Budget, scratch: Path) -> dict[str, Outcome]:
    """All five contenders on one target and seed, one after another. The sequential loop goes
    first: the swarm then runs for the sequential loop's wall time (the goal's question), and
    the equal-evaluation table counts the swarm's first `budget` evaluations of that run."""
    sequential = _timed(f"{target.name} seed {seed} sequential",
                        lambda: run_loop(target, seed, 1, budget, scratch, keep_if_lower=True))
    wall = _budget_seconds(sequential, budget.evaluations)
    runs: dict[str, Callable[[], Outcome]] = {
        "swarm": lambda: run_loop(target, seed, budget.parallel, budget, scratch, keep_if_lower=False,
                                  wall_s=wall),
        "best-of-N": lambda: run_best_of_n(target, seed, budget),
        "TPE": lambda: run_tpe(target, seed, budget),
        "PBT": lambda: run_pbt(target, seed, budget, scratch),
    }
    return {"sequential": sequential} | {name: _timed(f"{target.name} seed {seed} {name}", run)
                                         for name, run in runs.items()}


def _timed(what: str, run: Callable[[], Outcome]) -> Outcome:
    """run(), with its wall time on stderr: the full run is long, and stdout is the table."""
    started = time.monotonic()
    outcome = run()
    print(f"{what}: {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return outcome


def report(target: Target, runs: list[dict[str, Outcome]], budget: Budget) -> None:
    print(f"\n## {target.name}: {budget.evaluations} evaluations of {budget.seconds_each:g} s, "
          f"{budget.parallel} in parallel (sequential: 1), {len(runs)} seed(s), goal true <= {target.goal:g}")
    rows = [summarize(name, [r[name] for r in runs], target.goal, budget.evaluations) for name in CONTENDERS]
    print("\n".join(format_table(rows, target.goal)))
    print()
    ratios = [time_ratio(r["swarm"], r["sequential"], budget.evaluations) for r in runs]
    print("\n".join(format_ratios(ratios)))
    broken = [v for r in runs for v in r["sequential"].not_keep_if_lower]
    print(f"- sequential ledgers checked: every verdict is keep-if-lower on single runs: "
          f"{'yes' if not broken else 'NO: ' + '; '.join(broken[:3])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per target (default 5; 1 quick)")
    parser.add_argument("--keep", type=Path, help="keep run directories and Tune logs here")
    parser.add_argument("--targets", default="quadratic,manyknob", help=f"of {', '.join(t.name for t in TARGETS)}")
    parser.add_argument("--seconds-each", type=float, default=3.0,
                        help="one evaluation's budget: long enough that 8 workers on 2 cores run ~8x the trials")
    args = parser.parse_args()
    budget = Budget(16, 0.2, 4) if args.quick else Budget(64, args.seconds_each, 8)
    chosen = [t for name in args.targets.split(",") for t in TARGETS if t.name == name]
    targets = TARGETS[:1] if args.quick else chosen
    seeds = args.seeds or (1 if args.quick else 5)
    os.environ.pop("RAY_ADDRESS", None)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's progress tables off with verbose=0
    logging.getLogger("ray.tune").setLevel(logging.WARNING)  # PBT logs every exploit at INFO
    ray.init(address="local", num_cpus=budget.parallel + 1, include_dashboard=False,
             namespace="swarm-bench", log_to_driver=False)
    print(f"# search efficiency; {platform.node()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    try:
        with tempfile.TemporaryDirectory() as scratch:
            where = args.keep or Path(scratch)
            for target in targets:
                runs = [run_seed(target, seed, budget, where) for seed in range(seeds)]
                report(target, runs, budget)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
