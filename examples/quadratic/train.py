# The file agents edit: one point of a toy search space. Lower `score` is better.
# prepare.py (read-only) sleeps for the budget, then scores the point with noise.
# The constants stand on separate lines with comments between them, so that two changes
# to different constants merge cleanly when a stale winner is rebased onto a newer best.

# first coordinate
A = 1.0

# second coordinate
B = 1.0

# third coordinate
C = 1.0

OPTIMIZER = "sgd"  # choices: sgd, momentum, adam

import prepare  # noqa: E402  (constants first: they are what agents edit)

prepare.run(A, B, C, OPTIMIZER)
