# The file agents edit: one point of a deceptive toy search space. Lower `score` is better.
# prepare.py (read-only) sleeps for the budget, then scores the point with noise.
# The constants stand on separate lines with comments between them, so that two changes
# to different constants merge cleanly when a stale winner is rebased onto a newer best.

# learning rate
LR = 1.0

# batch size (in units of some base batch)
BATCH = 1.0

# warmup length (in units of some base length)
WARMUP = 1.0

SCHEDULE = "constant"  # choices: constant, linear, cosine

import prepare  # noqa: E402  (constants first: they are what agents edit)

prepare.run(LR, BATCH, WARMUP, SCHEDULE)
