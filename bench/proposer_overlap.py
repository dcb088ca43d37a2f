"""How much of a worker's time goes to evaluating when every proposal takes an LLM 20 s.

Workers prepare their next proposal while the current trial runs, so a slow provider should
cost almost nothing. This runs a real swarm (local Ray, `examples/quadratic` with a 60 s
budget) whose llm proposers talk to the fake provider of the tests, answering every request
after 20 s with an edit that fits the file it was shown, and reports for each worker the share
of its wall time, from its first trial's start to its last trial's end, spent in trials.
It also reports what importing the proposer (litellm) costs.

    .venv/bin/python bench/proposer_overlap.py [--trial-s 60] [--llm-s 20] [--workers 2] [--trials 10]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fake_llm import FakeLLM, Step  # noqa: E402


def import_seconds() -> float:
    code = "import os; os.environ['LITELLM_LOCAL_MODEL_COST_MAP']='True'; import litellm"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def responder(delay_s: float):
    rng = random.Random(0)

    def reply(body: dict) -> Step:
        shown = json.dumps(body["messages"])
        current = re.search(r"\\nB = ([0-9.]+)", shown)
        old = f"B = {current.group(1)}" if current else "B = 1.0"
        new = f"B = {round(rng.uniform(0.0, 1.0), 4)}"
        return Step(f"Hypothesis: try {new}\ntrain.py\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n",
                    delay_s=delay_s)
    return reply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trial-s", type=float, default=60.0)
    parser.add_argument("--llm-s", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--keep", type=Path, help="copy the run's ledger.jsonl here")
    args = parser.parse_args()
    os.environ["OPENAI_API_KEY"] = "bench"
    imports = [import_seconds() for _ in range(3)]

    import ray

    from swarm.config import load_config
    from swarm.launch import RunOptions, run_swarm

    with tempfile.TemporaryDirectory() as tmp, FakeLLM([], responder=responder(args.llm_s)) as fake:
        os.environ["HOME"] = tmp  # Ray writes its token there
        ray.init(address="local", num_cpus=args.workers + 1, include_dashboard=False, log_to_driver=False)
        config = load_config(ROOT / "configs" / "quadratic.yaml", {
            "target.repo": str(ROOT / "examples" / "quadratic"), "target.budget_s": args.trial_s,
            "target.timeout_s": args.trial_s + 60, "workers.count": args.workers, "stop.max_trials": args.trials,
            "acceptance.baseline_runs": 1, "proposer.kind": "llm", "proposer.model": "openai/fake",
            "proposer.api_base": fake.openai_base,
            "proposer.price": {"input_per_mtok": 0.0, "output_per_mtok": 0.0}})
        run_dir = Path(tmp) / "run"
        run_swarm(RunOptions(config, run_dir))
        ray.shutdown()
        ledger = (run_dir / "ledger.jsonl").read_text()
        if args.keep:
            args.keep.write_text(ledger)
        events = [json.loads(line) for line in ledger.splitlines()]
    started = {e["trial"]: e for e in events if e["event"] == "trial_started"}
    finished = {e["trial"]: e for e in events if e["event"] == "trial_finished"}
    print(f"proposer_overlap: {args.workers} workers, {args.trial_s:g} s trials, fake LLM answering in "
          f"{args.llm_s:g} s, {len(finished)} trials, {len(fake.requests)} LLM requests\n")
    print("| worker | trials | span s | in trials s | share evaluating |")
    print("|---|---|---|---|---|")
    for worker in sorted({e["worker"] for e in started.values()}):
        mine = [t for t, e in started.items() if e["worker"] == worker and t in finished]
        span = max(finished[t]["ts"] for t in mine) - min(started[t]["ts"] for t in mine)
        busy = sum(finished[t]["ts"] - started[t]["ts"] for t in mine)
        print(f"| {worker} | {len(mine)} | {span:.1f} | {busy:.1f} | {100 * busy / span:.1f}% |")
    print(f"\nimport litellm in a fresh interpreter: {min(imports):.2f} s best of 3 "
          f"({', '.join(f'{s:.2f}' for s in imports)})")


if __name__ == "__main__":
    main()
