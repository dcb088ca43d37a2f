"""Fixed harness of the many-knob example: the objective, its noise, the result block. Read-only.

Thirty constants, K01 to K30, each starting at 1.0. Their effects are mostly separable: knob i
costs `WEIGHT_i * (log2 K_i - OPTIMUM_i)**2`, with its optimum one or two octaves (or two 1.25x
steps) away, and its first good step worth 1 to 3 noise sd. Three pairs interact: moving one
of a pair away from the other costs `PAIR_WEIGHT` per squared octave of the gap (measured from
the pair's joint optimum), so the last gains of those knobs need both to move.

True optimum: 0.0 at every K_i = 2**OPTIMUM_i. The start (all 1.0) is 3.718648.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Mapping

__all__ = ["NOISE", "KNOBS", "PAIRS", "true_score", "main"]

NOISE = 0.05  # sigma of the Gaussian noise on every score
# knob -> (optimum, in octaves from 1.0; weight per squared octave)
KNOBS = {
    "K01": (+0.64, 0.4258),
    "K02": (+0.64, 0.1725),
    "K03": (-0.64, 0.4320),
    "K04": (+1.00, 0.0548),
    "K05": (+2.00, 0.0381),
    "K06": (-2.00, 0.0321),
    "K07": (+0.64, 0.4859),
    "K08": (-1.00, 0.0526),
    "K09": (-1.00, 0.1409),
    "K10": (+0.64, 0.3356),
    "K11": (+2.00, 0.0491),
    "K12": (-0.64, 0.2762),
    "K13": (-2.00, 0.0300),
    "K14": (-1.00, 0.1305),
    "K15": (-0.64, 0.2538),
    "K16": (+2.00, 0.0355),
    "K17": (-0.64, 0.2534),
    "K18": (+0.64, 0.4542),
    "K19": (-2.00, 0.0371),
    "K20": (+1.00, 0.0629),
    "K21": (+1.00, 0.1377),
    "K22": (+1.00, 0.1007),
    "K23": (-1.00, 0.0743),
    "K24": (+1.00, 0.0619),
    "K25": (-2.00, 0.0303),
    "K26": (-0.64, 0.3274),
    "K27": (-1.00, 0.1024),
    "K28": (-1.00, 0.0972),
    "K29": (+1.00, 0.1013),
    "K30": (-0.64, 0.4715),
}
PAIRS = (("K03", "K17"), ("K09", "K14"), ("K21", "K29"))
PAIR_WEIGHT = 0.04


def true_score(knobs: Mapping[str, float]) -> float:
    """The noise-free objective: 0 with every knob at its optimum."""
    exponent = {}
    for name, (optimum, _weight) in KNOBS.items():
        value = knobs[name]
        if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a positive number (got {value!r})")
        exponent[name] = math.log2(value) - optimum
    separable = math.fsum(KNOBS[name][1] * off ** 2 for name, off in exponent.items())
    paired = math.fsum(PAIR_WEIGHT * (exponent[a] - exponent[b]) ** 2 for a, b in PAIRS)
    return separable + paired


def main(knobs: Mapping[str, float]) -> None:
    """One experiment: wait the budget, then print the result block with fresh noise."""
    start = time.perf_counter()
    time.sleep(float(os.environ.get("SWARM_BUDGET_S", "1")))
    true = true_score(knobs)
    noisy = true + random.Random(os.urandom(16)).gauss(0.0, NOISE)  # never seeded by the candidate
    print("---")
    for key, value in (("score", noisy), ("true_score", true), ("training_seconds", time.perf_counter() - start)):
        print(f"{key + ':':<18}{value:.6f}")


if __name__ == "__main__":
    print("many-knob example harness: run `python train.py` for one experiment (lower score is better)")
