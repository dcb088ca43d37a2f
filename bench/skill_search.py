"""Skill search: how fast a swarm raises the skill example's pass rate, 4 workers against one.

The skill target (`configs/skill.yaml`, `examples/skill`) on offline fakes, on the real swarm
(`run_swarm` on a local Ray instance, every trial's commands in the jail where this machine can
make one): the model under test and its judge are `tests/fake_skill_model.py` (deterministic: the
pass rate depends on the rules SKILL.md holds, and nothing else), and the llm proposer talks to a
FakeLLM whose every reply adds one of fake_skill_model's IMPROVED_RULES to the SKILL.md it was
shown, as a SEARCH/REPLACE edit. Each rule goes in a place of its own (ANCHORS), so the changes
of different workers merge line by line into unions; the rule is the next missing one in turn
(a counter shared by every request), so workers asking at once add different rules. With every
rule present, a reply adds one again: a valid edit, tied on the pass rate, lost on tokens.

Two modes, one after the other on one Ray instance: `swarm`, 4 workers (workers.prepare_ahead on),
and `sequential`, autoresearch's loop (1 worker, workers.prepare_ahead: false). Each stops when
the pass rate reaches 1.0 (stop.target_metric) or at --max-trials. Keep-if-better on one run each
(acceptance.baseline_runs: 1, false_accept: 0.5): the fake model is deterministic, one run tells.
SKILL_REPEATS=1, SKILL_CONCURRENCY=1 (see skill_config); every visible case (8) and held-out
case (4) runs, with the judge.

Reported per mode: the pass rate from baseline to final, the trials (all evaluations, baselines
included) and wall seconds from the run's start to the verdict that reached the final pass rate,
the held-out pass rate of the baseline and of the final best, and the speedup: the sequential
run's seconds to reach the pass rate both reached over the swarm's.

    .venv/bin/python bench/skill_search.py                  # 4 workers against 1 (about 10 min on 2 shared cores)
    .venv/bin/python bench/skill_search.py [--workers 4] [--max-trials 40] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fake_llm import FakeLLM, Step  # noqa: E402
from tests.fake_skill_model import IMPROVED_RULES, skill_server  # noqa: E402

CONFIG = ROOT / "configs" / "skill.yaml"
# Where each of IMPROVED_RULES goes: a line of the shipped SKILL.md, and whether the rule goes after
# or before it. Six different places, so that two workers' rules never insert at one place (which
# the line-by-line merge calls a conflict).
TITLE_LINE = "- Start with a title line: `# <project> <version>`."
OPENING = "Write the release notes for the release the user describes."
ANCHORS = [("# Release notes", "after"), (OPENING, "before"), (OPENING, "after"), (TITLE_LINE, "before"),
           (TITLE_LINE, "after"), ("- Group the changes under headings such as `### Features` and `### Fixes`.",
                                   "after")]
SHOWN_SKILL = re.compile(r"^SKILL\.md\n```\n(.*?)^```", re.M | re.S)


@dataclass(frozen=True)
class Reached:
    """Best's pass rate after one accepted verdict, and what reaching it took."""

    pass_rate: float
    trials: int  # evaluations started up to the verdict, baselines included
    seconds: float  # from the run's start to the verdict


@dataclass(frozen=True)
class ModeResult:
    mode: str
    workers: int
    baseline: float
    heldout_baseline: float | None
    heldout_final: float | None
    steps: list[Reached]
    trials: int  # every evaluation of the run
    wall_s: float  # run_swarm, start to end
    proposals: int  # requests to the proposer's fake LLM

    @property
    def final(self) -> float:
        return self.steps[-1].pass_rate if self.steps else self.baseline

    def reach(self, pass_rate: float) -> Reached | None:
        """The first step at or above pass_rate (None: never reached; the baseline counts as 0 s)."""
        if self.baseline >= pass_rate:
            return Reached(self.baseline, 1, 0.0)
        return next((s for s in self.steps if s.pass_rate >= pass_rate - 1e-9), None)


# -- the scripted proposer --------------------------------------------------------------------------

def rule_edit(index: int, hypothesis: str) -> str:
    line, where = ANCHORS[index]
    rule = IMPROVED_RULES[index]
    replace = f"{line}\n{rule}" if where == "after" else f"{rule}\n{line}"
    return f"Hypothesis: {hypothesis}\nSKILL.md\n<<<<<<< SEARCH\n{line}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def rule_adder() -> Callable[[dict[str, Any]], Step]:
    """Replies with an edit adding a rule to the SKILL.md shown: the n-th request showing that
    SKILL.md (that parent) gets its n-th missing rule, so workers asking at once add different
    rules; once every missing rule was handed out on it, a rule it holds, again (a valid edit, tied
    on the pass rate, lost on tokens), rather than a repeat the worker would refuse."""
    lock, asked = threading.Lock(), Counter[str]()

    def reply(body: dict[str, Any]) -> Step:
        user = "\n".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user")
        shown = SHOWN_SKILL.search(user)
        skill = shown.group(1) if shown else ""
        with lock:
            n, asked[skill] = asked[skill], asked[skill] + 1
        missing = [i for i, rule in enumerate(IMPROVED_RULES) if rule not in skill]
        present = [i for i in range(len(IMPROVED_RULES)) if i not in missing]
        order = missing + present
        index = order[n % len(order)]
        again = " again" if index in present else ""
        return Step(rule_edit(index, f"add rule {index + 1}{again} ({IMPROVED_RULES[index][2:40]}...)"))
    return reply


# -- running the swarm ------------------------------------------------------------------------------

def skill_config(model: FakeLLM, proposer: FakeLLM, workers: int, ahead: bool, max_trials: int,
                 repeats: int) -> Any:
    from swarm.core.config import load_config
    from swarm.shell.driver import resolve_target_repo
    from workers.evaluation import jail_missing
    return resolve_target_repo(load_config(CONFIG, {
        "target.repo": str(ROOT / "examples" / "skill"), "sandbox.network": [f"127.0.0.1:{model.port}"],
        "sandbox.isolation": "namespaces" if jail_missing() is None else "none",
        "target.env.SKILL_MODEL": "openai/skill-model", "target.env.SKILL_API_BASE": model.openai_base,
        "target.env.SKILL_JUDGE_MODEL": "openai/judge", "target.env.SKILL_REPEATS": str(repeats),
        # one call at a time, no retries: under load, litellm's first calls from several threads at
        # once can fail ("Pydantic models should inherit from BaseModel"), and its retry then needs
        # tenacity, which this venv lacks; either way the trial crashed
        "target.env.SKILL_CONCURRENCY": "1", "target.env.SKILL_RETRIES": "0",
        "workers.count": workers, "workers.prepare_ahead": ahead,
        "stop.max_trials": max_trials, "stop.target_metric": 1.0, "stop.max_refusals": 10 * max_trials,
        "acceptance.baseline_runs": 1, "acceptance.false_accept": 0.5,
        "proposer.model": "openai/fake-proposer", "proposer.api_base": proposer.openai_base,
        "proposer.retry_base_s": 0.1, "proposer.price": {"input_per_mtok": 0.0, "output_per_mtok": 0.0}}), CONFIG)


def run_mode(mode: str, workers: int, ahead: bool, args: argparse.Namespace, model: FakeLLM,
             proposer: FakeLLM, run_dir: Path) -> ModeResult:
    from swarm.shell.driver import RunOptions, run_swarm
    config = skill_config(model, proposer, workers, ahead, args.max_trials, args.repeats)
    started = time.perf_counter()
    status = run_swarm(RunOptions(config, run_dir))
    wall = time.perf_counter() - started
    events = [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]
    assert status.baseline is not None and status.baseline.mean is not None, f"{mode}: no baseline ({status})"
    held = "pass_rate_heldout"
    return ModeResult(mode, workers, status.baseline.mean, status.baseline.others.get(held),
                      status.best.others.get(held) if status.best else None, best_steps(events),
                      sum(e["event"] == "trial_started" for e in events), wall, len(proposer.requests))


# -- the figures (pure, from the ledger) ------------------------------------------------------------

def runs_of(events: list[dict[str, Any]], trial: str) -> list[float]:
    """The metrics of a trial's runs: its own and its confirmations'."""
    confirms = {e["trial"] for e in events if e["event"] == "trial_started" and e.get("of") == trial
                and e["kind"] == "confirm"}
    return [e["metric"] for e in events if e["event"] == "trial_finished" and e.get("metric") is not None
            and (e["trial"] == trial or e["trial"] in confirms)]


def best_steps(events: list[dict[str, Any]]) -> list[Reached]:
    """Best's pass rate after each accepted verdict, with the trials and seconds it took."""
    start = next(e["ts"] for e in events if e["event"] == "run_started")
    steps, trials = [], 0
    for e in events:
        trials += e["event"] == "trial_started"
        if e["event"] == "verdict" and e["verdict"] == "accepted":
            runs = runs_of(events, e["trial"])
            steps.append(Reached(sum(runs) / len(runs), trials, e["ts"] - start))
    return steps


def table(results: list[ModeResult]) -> list[str]:
    lines = ["| mode | workers | pass rate baseline -> final | trials to reach it | s to reach it | "
             "held-out baseline -> final | trials in all | wall s |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        reached = r.reach(r.final)
        assert reached is not None, "the final pass rate is one the run reached"
        held = f"{_rate(r.heldout_baseline)} -> {_rate(r.heldout_final)}"
        lines.append(f"| {r.mode} | {r.workers} | {r.baseline:.3f} -> {r.final:.3f} | {reached.trials} | "
                     f"{reached.seconds:.1f} | {held} | {r.trials} | {r.wall_s:.1f} |")
    return lines


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def steps_lines(results: list[ModeResult]) -> list[str]:
    return [f"{r.mode}: best's pass rate " + ", ".join(f"{s.pass_rate:.3f} at {s.seconds:.0f} s (trial {s.trials})"
                                                        for s in r.steps) for r in results]


def speedup(swarm: ModeResult, sequential: ModeResult) -> str:
    target = min(swarm.final, sequential.final)
    fast, slow = swarm.reach(target), sequential.reach(target)
    if fast is None or slow is None or fast.seconds <= 0:
        return f"speedup: n/a (pass rate {target:.3f} not reached by both)"
    return (f"speedup to pass rate {target:.3f}: sequential {slow.seconds:.1f} s / {swarm.workers} workers "
            f"{fast.seconds:.1f} s = {slow.seconds / fast.seconds:.2f}x "
            f"(trials: {slow.trials} against {fast.trials})")


# -- main -------------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=4, help="workers of the swarm mode")
    parser.add_argument("--max-trials", type=int, default=40, help="a cap on each mode's evaluations")
    parser.add_argument("--repeats", type=int, default=1, help="SKILL_REPEATS: runs of each case a trial")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run directories here (default: a temp dir)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    os.environ["OPENAI_API_KEY"] = "bench"
    import ray

    from workers.evaluation import jail_missing

    results: list[ModeResult] = []
    model, _ = skill_server()
    with tempfile.TemporaryDirectory() as tmp, model:
        os.environ["HOME"] = tmp  # Ray writes its token there
        ray.init(address="local", namespace="swarm", num_cpus=args.workers + 1, include_dashboard=False,
                 log_to_driver=False)
        try:
            for mode, workers, ahead in (("swarm", args.workers, True), ("sequential", 1, False)):
                with FakeLLM([], responder=rule_adder()) as proposer:  # a fresh proposer for each mode
                    results.append(run_mode(mode, workers, ahead, args, model, proposer,
                                            (args.keep or Path(tmp)) / mode))
        finally:
            ray.shutdown()
    jail = "in the jail" if jail_missing() is None else f"NOT jailed ({jail_missing()})"
    print(f"\nskill_search: configs/skill.yaml on the offline fakes, SKILL_REPEATS={args.repeats}, "
          "SKILL_CONCURRENCY=1, 8 visible + "
          f"4 held-out cases with the judge, trials {jail}; keep-if-better on one run (baseline_runs 1, "
          f"false_accept 0.5); stop at pass rate 1.0 or {args.max_trials} trials; {os.cpu_count()} CPUs\n")
    print("\n".join(table(results)))
    print()
    print("\n".join(steps_lines(results)))
    print(speedup(results[0], results[1]))
    print("proposals asked: " + ", ".join(f"{r.mode} {r.proposals}" for r in results))


if __name__ == "__main__":
    main()
