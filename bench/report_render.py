"""How long `swarm report` takes on runs of 10, 1,000 and 10,000 trials, and how `swarm status`
(the ledger read and summarized, no figures) compares.

The runs are synthetic ledgers (tests/synthetic_ledger.py: a noisy hill climb with crashes,
confirmations, stale winners and conflicts, 16 workers) written without running anything, so
the figures are the report's own cost: replaying the ledger, the facts, progress.png,
lineage.svg and report.md. All sizes are timed in one process run, each the median of
`--repeat` runs, and given as a ratio to the 10-trial report (absolute times do not carry from
one machine to another).

    .venv/bin/python bench/report_render.py             # 10, 1,000, 10,000 trials, 3 repeats
    .venv/bin/python bench/report_render.py --quick     # 10 and 1,000 trials, 1 repeat
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coordinator.status import load_status  # noqa: E402
from swarm.shell.report.writer import write_report  # noqa: E402
from tests.synthetic_ledger import write_synthetic_run  # noqa: E402


def _median_seconds(action, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 and 1,000 trials, once each")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [10, 1_000] if args.quick else [10, 1_000, 10_000]
    repeat = 1 if args.quick else args.repeat
    print(f"machine: {platform.node()} {platform.machine()}, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}; median of {repeat}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        write_report(_made(Path(scratch), 10))  # matplotlib's first figure (font cache) is not timed
        for trials in sizes:
            run_dir = _made(Path(scratch), trials)
            report_s = _median_seconds(lambda here=run_dir: write_report(here), repeat)
            status_s = _median_seconds(lambda here=run_dir: load_status(here), repeat)
            ledger_kb = (run_dir / "ledger.jsonl").stat().st_size / 1024
            png_kb = (run_dir / "progress.png").stat().st_size / 1024
            rows.append((trials, ledger_kb, report_s, status_s, png_kb))
    base = rows[0][2]
    print("\n| trials | ledger KiB | swarm report s | ratio to 10 trials | swarm status ms | progress.png KiB |")
    print("|---|---|---|---|---|---|")
    for trials, ledger_kb, report_s, status_s, png_kb in rows:
        print(f"| {trials:,} | {ledger_kb:,.0f} | {report_s:.2f} | {report_s / base:.2f}x "
              f"| {1000 * status_s:.2f} | {png_kb:,.0f} |")


def _made(scratch: Path, trials: int) -> Path:
    run_dir = scratch / f"run-{trials}"
    if not (run_dir / "ledger.jsonl").exists():
        write_synthetic_run(run_dir, trials=trials, workers=16)
    return run_dir


if __name__ == "__main__":
    main()
