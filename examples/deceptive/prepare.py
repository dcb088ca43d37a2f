"""Fixed harness of the deceptive example: the objective, its noise, the result block. Read-only.

A noisy toy objective made to mislead a greedy one-constant-at-a-time search:

- **Interacting constants.** LR and BATCH matter mostly through their ratio (as with the
  linear scaling rule): moving one alone costs `RATIO_WEIGHT * (log2 LR - log2 BATCH)**2`,
  while the gain comes from moving both up together. From the start, a 1.25x step of one of
  them helps by 0.10 but a 2x step of one alone is worse by 0.06 (both 2x: better by 0.75).
  Near the optimum every single step of LR or BATCH is worse: the last gains need both.
- **A plateau.** WARMUP sits on a flat shoulder: `PLATEAU_HEIGHT * d**4 / (1 + d**4)` with
  `d = (log2 WARMUP - 2) / PLATEAU_WIDTH`. A 1.25x step from the start gains 0.007, a 2x step
  0.089; only reaching WARMUP near 4 releases the 0.49 it holds.
- **Noise comparable to late gains.** `NOISE` (0.03) is the size of the last improvements
  (SCHEDULE linear -> cosine 0.05, WARMUP 3.2 -> 4 0.02): a rule that keeps any lower single
  measurement accepts regressions there.

True optimum: 0.0 at LR = 4.0, BATCH = 4.0, WARMUP = 4.0, SCHEDULE = "cosine" (all reachable
from the start by the mutate proposer's 2x and 1.25x steps). The start (LR = BATCH = WARMUP =
1.0, SCHEDULE = "constant") is 1.642608.
"""

from __future__ import annotations

import math
import os
import random
import time

__all__ = ["NOISE", "SCHEDULE_PENALTY", "true_score", "evaluate", "report", "run"]

NOISE = 0.03  # sigma of the Gaussian noise on every score
RATIO_WEIGHT = 0.5  # cost of LR and BATCH apart, per squared octave
SCALE_WEIGHT = 0.0625  # cost of their common scale away from 4, per squared octave of the sum
PLATEAU_HEIGHT = 0.5
PLATEAU_WIDTH = 0.7  # in octaves of WARMUP
SCHEDULE_PENALTY = {"constant": 0.15, "linear": 0.05, "cosine": 0.0}


def true_score(lr: float, batch: float, warmup: float, schedule: str) -> float:
    """The noise-free objective: 0 at lr = batch = warmup = 4 with the cosine schedule."""
    if schedule not in SCHEDULE_PENALTY:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {sorted(SCHEDULE_PENALTY)}")
    if min(lr, batch, warmup) <= 0:
        raise ValueError(f"LR, BATCH and WARMUP must be positive (got {lr}, {batch}, {warmup})")
    u, v, w = math.log2(lr), math.log2(batch), math.log2(warmup)
    d4 = ((w - 2.0) / PLATEAU_WIDTH) ** 4
    return (RATIO_WEIGHT * (u - v) ** 2 + SCALE_WEIGHT * (u + v - 4.0) ** 2
            + PLATEAU_HEIGHT * d4 / (1.0 + d4) + SCHEDULE_PENALTY[schedule])


def evaluate(lr: float, batch: float, warmup: float, schedule: str) -> float:
    """The measured score: the true objective plus fresh noise, different on every run."""
    rng = random.Random(os.urandom(16))  # never seeded by the candidate: repeats must differ
    return true_score(lr, batch, warmup, schedule) + rng.gauss(0.0, NOISE)


def report(score: float, true: float, seconds: float) -> None:
    """Print the autoresearch result block the swarm reads."""
    print("---")
    print(f"score:            {score:.6f}")
    print(f"true_score:       {true:.6f}")
    print(f"training_seconds: {seconds:.1f}")


def run(lr: float, batch: float, warmup: float, schedule: str) -> None:
    """One experiment: 'train' for the budget (a GPU-bound run mostly waits), then report."""
    start = time.perf_counter()
    time.sleep(float(os.environ.get("SWARM_BUDGET_S", "1")))
    seconds = time.perf_counter() - start
    report(evaluate(lr, batch, warmup, schedule), true_score(lr, batch, warmup, schedule), seconds)


if __name__ == "__main__":
    print("deceptive example harness: run `python train.py` for one experiment (lower score is better)")
