"""Fixed harness of the quadratic example: the objective, its noise, the result block. Read-only."""

from __future__ import annotations

import os
import random
import time

__all__ = ["NOISE", "OPTIMIZER_PENALTY", "true_score", "evaluate", "report", "run"]

NOISE = 0.02  # sigma of the Gaussian noise on every score: the swarm must tell a gain from luck
OPTIMIZER_PENALTY = {"sgd": 0.6, "momentum": 0.3, "adam": 0.0}


def true_score(a: float, b: float, c: float, optimizer: str) -> float:
    """The noise-free objective: 0 at a=3, b=0.3, c=0.25 with adam (all reachable by scaling)."""
    if optimizer not in OPTIMIZER_PENALTY:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {sorted(OPTIMIZER_PENALTY)}")
    return (a - 3.0) ** 2 + 2.0 * (b - 0.3) ** 2 + 2.0 * (c - 0.25) ** 2 + OPTIMIZER_PENALTY[optimizer]


def evaluate(a: float, b: float, c: float, optimizer: str) -> float:
    """The measured score: the true objective plus fresh noise, different on every run."""
    rng = random.Random(os.urandom(16))  # never seeded by the candidate: repeats must differ
    return true_score(a, b, c, optimizer) + rng.gauss(0.0, NOISE)


def report(score: float, true: float, seconds: float) -> None:
    """Print the autoresearch result block the swarm reads."""
    print("---")
    print(f"score:            {score:.6f}")
    print(f"true_score:       {true:.6f}")
    print(f"training_seconds: {seconds:.1f}")


def run(a: float, b: float, c: float, optimizer: str) -> None:
    """One experiment: 'train' for the budget (a GPU-bound run mostly waits), then report."""
    start = time.perf_counter()
    time.sleep(float(os.environ.get("SWARM_BUDGET_S", "1")))
    seconds = time.perf_counter() - start
    report(evaluate(a, b, c, optimizer), true_score(a, b, c, optimizer), seconds)


if __name__ == "__main__":
    print("quadratic example harness: run `python train.py` for one experiment (lower score is better)")
