# The file agents edit: thirty knobs of a noisy toy objective. Lower `score` is better.
# prepare.py (read-only) waits for the budget, then scores them with noise.
K01 = 1.0
K02 = 1.0
K03 = 1.0
K04 = 1.0
K05 = 1.0
K06 = 1.0
K07 = 1.0
K08 = 1.0
K09 = 1.0
K10 = 1.0
K11 = 1.0
K12 = 1.0
K13 = 1.0
K14 = 1.0
K15 = 1.0
K16 = 1.0
K17 = 1.0
K18 = 1.0
K19 = 1.0
K20 = 1.0
K21 = 1.0
K22 = 1.0
K23 = 1.0
K24 = 1.0
K25 = 1.0
K26 = 1.0
K27 = 1.0
K28 = 1.0
K29 = 1.0
K30 = 1.0

import prepare  # noqa: E402  (constants first: they are what agents edit)

prepare.main({name: value for name, value in dict(globals()).items() if name in prepare.KNOBS})
