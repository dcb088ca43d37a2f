"""Duty cycle: the share of worker time spent evaluating when every proposal takes an LLM 20 s.

Our workers prepare their next proposal while the current trial runs; autoresearch's single
loop proposes, then evaluates. This runs both on one local Ray instance, one after the other in
one process run: a real swarm of 2 workers on `examples/quadratic` (60 s trials), whose llm
proposers talk to the tests' fake provider (`tests/fake_llm.py`), answering every request after
20 s with an edit that fits the file it was shown. `workers.prepare_ahead` is true for the
overlapped mode and false for the sequential one; everything else is the same. For each worker
it reports the share of its wall time, from its first trial's start to its last trial's end,
spent in trials (ledger timestamps), and for each mode its trials per hour over the same span;
then the ratio of the two rates. It also reports what importing the proposer (litellm) costs.

    .venv/bin/python bench/duty_cycle.py            # 60 s trials, 20 s LLM, 10 trials a mode (about 14 min)
    .venv/bin/python bench/duty_cycle.py --quick    # 3 s trials, 1.5 s LLM, 6 trials a mode (about 45 s)
    .venv/bin/python bench/duty_cycle.py [--trial-s 60] [--llm-s 20] [--workers 2] [--trials 10]
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fake_llm import FakeLLM, Step  # noqa: E402

Span = tuple[float, float]  # (start, end) of one trial, epoch seconds
MODES = {"overlapped": True, "sequential": False}  # mode -> workers.prepare_ahead


@dataclass(frozen=True)
class ModeResult:
    mode: str
    spans: dict[str, list[Span]]  # worker -> its trials
    llm_requests: int


def import_seconds() -> float:
    code = "import os; os.environ['LITELLM_LOCAL_MODEL_COST_MAP']='True'; import litellm"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


# -- the scripted provider ----------------------------------------------------------------------

def current_b(messages: list[dict[str, Any]]) -> str | None:
    """The value of `B = ...` in the program the model was asked to change. OpenEvolve's prompt
    shows other programs first and the one to change after '# Current Program'; ours shows the
    editable files first. Lines starting with 'B = ' only: hypotheses and diffs don't count."""
    shown = "\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
    shown = shown.rsplit("# Current Program\n", 1)[-1]
    found = re.search(r"^B = ([0-9.]+)[ \t]*$", shown, re.M)
    return found.group(1) if found else None


def responder(delay_s: float, seed: int = 0) -> Callable[[dict[str, Any]], Step]:
    """Replies after delay_s with one SEARCH/REPLACE edit of `B` that fits the program shown;
    the format parses for our llm proposer (a path line, then the block) and for OpenEvolve."""
    rng = random.Random(seed)

    def reply(body: dict[str, Any]) -> Step:
        old = f"B = {current_b(body['messages']) or '1.0'}"
        new = f"B = {round(rng.uniform(0.0, 1.0), 4)}"
        return Step(f"Hypothesis: try {new}\ntrain.py\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n",
                    delay_s=delay_s)
    return reply


# -- running the swarm --------------------------------------------------------------------------

def llm_swarm_config(fake: FakeLLM, trial_s: float, workers: int, trials: int,
                     extra: dict[str, Any] | None = None) -> Any:
    """configs/quadratic.yaml with the llm proposer on the fake provider, one baseline run."""
    from swarm.core.config import load_config
    return load_config(ROOT / "configs" / "quadratic.yaml", {
        "target.repo": str(ROOT / "examples" / "quadratic"), "target.budget_s": trial_s,
        "target.timeout_s": trial_s + 60, "workers.count": workers, "stop.max_trials": trials,
        "acceptance.baseline_runs": 1, "proposer.kind": "llm", "proposer.model": "openai/fake",
        "proposer.api_base": fake.openai_base,
        "proposer.price": {"input_per_mtok": 0.0, "output_per_mtok": 0.0}, **(extra or {})})


def run_ledger(config: Any, run_dir: Path) -> list[dict[str, Any]]:
    """Runs one swarm to its stopping rule on the connected Ray instance; its ledger events."""
    from swarm.shell.driver import RunOptions, run_swarm
    run_swarm(RunOptions(config, run_dir))
    return [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]


def trial_spans(events: list[dict[str, Any]]) -> dict[str, list[Span]]:
    """Each worker's finished trials as (start, end), from the ledger."""
    started = {e["trial"]: e for e in events if e["event"] == "trial_started"}
    spans: dict[str, list[Span]] = {}
    for e in events:
        if e["event"] == "trial_finished" and e["trial"] in started:
            begun = started[e["trial"]]
            spans.setdefault(begun["worker"], []).append((begun["ts"], e["ts"]))
    return spans


# -- the figures (pure) -------------------------------------------------------------------------

def span_s(spans: list[Span]) -> float:
    return max(end for _, end in spans) - min(start for start, _ in spans)


def busy_s(spans: list[Span]) -> float:
    return sum(end - start for start, end in spans)


def per_hour(spans: dict[str, list[Span]]) -> float:
    """Trials per hour of a mode, over its span from the first start to the last end."""
    every = [s for mine in spans.values() for s in mine]
    return len(every) * 3600 / span_s(every)


def table(results: list[ModeResult]) -> list[str]:
    lines = ["| mode | worker | trials | span s | in trials s | share evaluating |", "|---|---|---|---|---|---|"]
    for result in results:
        for worker, mine in sorted(result.spans.items()):
            lines.append(f"| {result.mode} | {worker} | {len(mine)} | {span_s(mine):.1f} | {busy_s(mine):.1f} | "
                         f"{100 * busy_s(mine) / span_s(mine):.1f}% |")
    return lines


def summary(results: list[ModeResult]) -> list[str]:
    lines = [f"{r.mode}: {sum(map(len, r.spans.values()))} trials, {per_hour(r.spans):.0f} trials/hour, "
             f"{r.llm_requests} LLM requests" for r in results]
    rate = {r.mode: per_hour(r.spans) for r in results}
    if set(rate) == set(MODES):
        lines.append(f"ratio: trials/hour overlapped / sequential = {rate['overlapped'] / rate['sequential']:.2f}x")
    return lines


# -- main ---------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trial-s", type=float, default=60.0)
    parser.add_argument("--llm-s", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trials", type=int, default=10, help="trials of each mode (baseline included)")
    parser.add_argument("--quick", action="store_true", help="3 s trials, 1.5 s LLM, 6 trials a mode")
    args = parser.parse_args()
    if args.quick:
        args.trial_s, args.llm_s, args.trials = 3.0, 1.5, 6
    return args


def main() -> None:
    args = parse_args()
    os.environ["OPENAI_API_KEY"] = "bench"
    imports = [import_seconds() for _ in range(1 if args.quick else 3)]

    import ray

    results: list[ModeResult] = []
    with tempfile.TemporaryDirectory() as tmp, FakeLLM([], responder=responder(args.llm_s)) as fake:
        os.environ["HOME"] = tmp  # Ray writes its token there
        ray.init(address="local", namespace="swarm", num_cpus=args.workers + 1, include_dashboard=False,
                 log_to_driver=False)
        try:
            for mode, ahead in MODES.items():
                asked_before = len(fake.requests)
                config = llm_swarm_config(fake, args.trial_s, args.workers, args.trials,
                                          {"workers.prepare_ahead": ahead})
                events = run_ledger(config, Path(tmp) / mode)
                results.append(ModeResult(mode, trial_spans(events), len(fake.requests) - asked_before))
        finally:
            ray.shutdown()
    print(f"\nduty_cycle: {args.workers} workers a mode, {args.trial_s:g} s trials, fake LLM answering in "
          f"{args.llm_s:g} s, {args.trials} trials a mode\n")
    print("\n".join(table(results)))
    print()
    print("\n".join(summary(results)))
    print(f"\nimport litellm in a fresh interpreter: {min(imports):.2f} s best of {len(imports)} "
          f"({', '.join(f'{s:.2f}' for s in imports)})")


if __name__ == "__main__":
    main()
