"""A large, consistent ledger written without running anything: a hill climb on a noisy
quadratic of eight constants, with crashes, confirmations, stale winners and conflicts.

For the report's tests and bench/report_render.py; the real coordinator writes the same event
shapes (coordinator/service.py), and replaying this ledger through SwarmState must work.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm.core.config import load_config

__all__ = ["SyntheticRun", "write_synthetic_run"]

ROOT = Path(__file__).resolve().parents[1]
NAMES = [f"X{i}" for i in range(8)]
NOISE = 0.02


@dataclass
class SyntheticRun:
    trials: int = 0
    accepted: list[str] = field(default_factory=list)  # trial ids, in order
    crashes: int = 0
    rebased: int = 0
    conflicts: int = 0


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


class _Writer:
    def __init__(self, path: Path, workers: int, seed: int) -> None:
        self.file = open(path, "w", encoding="utf-8")
        self.rng = random.Random(seed)
        self.workers, self.clock, self.number = workers, 1_700_000_000.0, 0
        self.best, self.point = _sha("initial"), {n: 1.0 for n in NAMES}
        self.best_value = self.true(self.point)
        self.summary = SyntheticRun()

    def event(self, **fields: Any) -> None:
        self.clock += self.rng.uniform(15.0, 45.0) / self.workers  # 60 s trials, two events each
        self.file.write(json.dumps({"ts": round(self.clock, 3), **fields}) + "\n")

    @staticmethod
    def true(point: dict[str, float]) -> float:
        return sum((value - 0.3 * (i + 1)) ** 2 for i, value in enumerate(point.values()))

    def trial(self, kind: str, commit: str, parent: str, hypothesis: str, value: float | None,
              of: str | None = None, status: str = "ok") -> str:
        self.number += 1
        trial_id, worker = f"{self.number:05d}", f"w{self.number % self.workers}"
        self.event(event="trial_started", trial=trial_id, kind=kind, worker=worker, commit=commit,
                   tree=_sha("tree" + commit), parent=parent, of=of, hypothesis=hypothesis,
                   session="s1", hardware="cpu:synthetic", node=f"node{self.number % 4}")
        metric = None if value is None else value + self.rng.gauss(0.0, NOISE)
        self.event(event="trial_finished", trial=trial_id, status=status, metric=metric,
                   metrics={} if metric is None else {"score": metric}, seconds=60.0,
                   hardware="cpu:synthetic", reason="" if status == "ok" else "exit code 1")
        self.summary.trials += 1
        return trial_id

    def verdict(self, trial_id: str, verdict: str, gain: float, **extra: Any) -> None:
        self.event(event="verdict", trial=trial_id, verdict=verdict, reference=self.best_value,
                   required=2 * NOISE, improvement=gain, runs=1, **extra)

    def step(self) -> None:
        name = self.rng.choice(NAMES)
        point = dict(self.point, **{name: round(self.point[name] * self.rng.choice([0.8, 1.25]), 4)})
        hypothesis, commit = f"{name} {self.point[name]} -> {point[name]}", _sha(f"c{self.number}")
        if self.rng.random() < 0.05:
            self.trial("candidate", commit, self.best, hypothesis, None, status="crash")
            self.summary.crashes += 1
            return
        value = self.true(point)
        trial_id = self.trial("candidate", commit, self.best, hypothesis, value)
        gain = self.best_value - value
        if gain <= 2 * NOISE:
            self.verdict(trial_id, "discard", gain)
        elif self.rng.random() < 0.04:
            self.verdict(trial_id, "stale_conflict", gain, reason="conflicts with best")
            self.summary.conflicts += 1
        else:
            self.accept(trial_id, commit, hypothesis, point, value, gain)

    def accept(self, trial_id: str, commit: str, hypothesis: str, point: dict[str, float],
               value: float, gain: float) -> None:
        if self.rng.random() < 0.1:  # it went stale: re-run on best as a rebased candidate
            rebased = _sha("rebased" + commit)
            self.verdict(trial_id, "rebased", gain, commit=rebased, tree=_sha("tree" + rebased),
                         parent=self.best)
            self.summary.rebased += 1
            trial_id = self.trial("candidate", rebased, self.best, hypothesis, value, of=trial_id)
            commit = rebased  # what is confirmed and accepted is the rebased commit
        self.verdict(trial_id, "promising", gain)
        self.trial("confirm", commit, self.best, hypothesis, value, of=trial_id)
        new_best = _sha("best" + trial_id)
        self.verdict(trial_id, "accepted", gain, best_commit=new_best)
        self.best, self.point, self.best_value = new_best, point, value
        self.summary.accepted.append(trial_id)


def write_synthetic_run(run_dir: Path, trials: int, workers: int = 16, seed: int = 0) -> SyntheticRun:
    """A run directory holding only ledger.jsonl (no repo/): about `trials` finished trials."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = load_config(ROOT / "configs" / "quadratic.yaml", {"target.repo": str(ROOT / "examples" / "quadratic"),
                                                                "workers.count": workers})
    writer = _Writer(run_dir / "ledger.jsonl", workers, seed)
    writer.event(event="run_started", commit=writer.best, tree=_sha("tree" + writer.best),
                 readonly_hashes={}, config=config.model_dump(mode="json"))
    writer.event(event="session_started", session="s1")
    for _ in range(3):
        writer.trial("baseline", writer.best, writer.best, "the target as given", writer.best_value)
    while writer.number < trials:
        writer.step()
    writer.file.close()
    return writer.summary
