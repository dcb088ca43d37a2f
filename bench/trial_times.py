"""How long trials took in a finished run, from its ledger: what a worker spent per trial.

    .venv/bin/python bench/trial_times.py runs/<name>

Each trial's time is from its `trial_started` to its `trial_finished` event, as the
coordinator recorded them: the experiment plus the worker's checkout, scope check and report.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def main(run_dir: Path) -> None:
    events = [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]
    started = {e["trial"]: e for e in events if e["event"] == "trial_started"}
    finished = {e["trial"]: e for e in events if e["event"] == "trial_finished"}
    seconds = sorted(finished[t]["ts"] - started[t]["ts"] for t in finished if t in started)
    span_min = (events[-1]["ts"] - events[0]["ts"]) / 60
    print(f"{run_dir}: {len(seconds)} trials in {span_min:.1f} min\n")
    print("| trial seconds | min | median | max |")
    print("|---|---|---|---|")
    print(f"| from start to finish | {seconds[0]:.1f} | {statistics.median(seconds):.1f} | {seconds[-1]:.1f} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: bench/trial_times.py RUN_DIR")
    main(Path(sys.argv[1]))
