"""The peer: OpenEvolve and the swarm on the same evaluator, scripted LLM and parallelism.

Question: how many evaluations an hour does each system get through, and how long does its
evaluator sit idle, when every proposal takes an LLM `--llm-s` seconds and every evaluation
`--trial-s` seconds?

Method, in one process run (OpenEvolve first, then the swarm on a local Ray instance):
- Evaluator: the quadratic example's objective (`examples/quadratic/prepare.py`), which sleeps
  the budget and prints the score. Both systems pay a subprocess per evaluation, wrapped by the
  same timer script that appends its start and end to a log: the evaluator's busy time is
  measured the same way for both.
  - OpenEvolve: an initial program holding the constants of `train.py` in an EVOLVE-BLOCK, and
    an evaluator.py whose evaluate(program_path) runs it and returns {"combined_score": -score}.
    Diff-based evolution, no cascade, `evaluator.parallel_evaluations = P`, other settings at
    OpenEvolve's defaults (5 islands); `max_iterations` is evaluations - 1, since OpenEvolve
    first evaluates the initial program.
  - The swarm: `configs/quadratic.yaml` with P workers, the llm proposer, one baseline run,
    `stop.max_trials` = evaluations.
- LLM: one `tests.fake_llm.FakeLLM` server (OpenAI protocol) that both talk to, answering every
  request after `--llm-s` with one SEARCH/REPLACE edit of `B` that fits the program it was shown
  (the same responder as bench/duty_cycle.py).
- Figures, from the timer log: evaluations; wall s from the first evaluation's start to the last
  one's end; evaluations/hour over that wall; the ratio to the swarm's rate; evaluator busy % =
  the evaluations' seconds / (P x wall); LLM requests the server answered.

    .venv/bin/python bench/openevolve_peer.py           # P=4, 10 s trials, 5 s LLM, 40 evaluations (about 5 min)
    .venv/bin/python bench/openevolve_peer.py --quick   # P=2, 2 s trials, 1 s LLM, 6 evaluations (under a minute)
    .venv/bin/python bench/openevolve_peer.py [--parallel 4] [--trial-s 10] [--llm-s 5] [--evaluations 40]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.duty_cycle import llm_swarm_config, responder, run_ledger  # noqa: E402
from tests.fake_llm import FakeLLM  # noqa: E402

QUADRATIC = ROOT / "examples" / "quadratic"
Span = tuple[float, float]

# Runs the rest of its command line as a child, passing its output through, then appends the
# child's start and end (epoch seconds) to the log named by its first argument.
TIMER = '''\
import subprocess, sys, time
started = time.time()
code = subprocess.run(sys.argv[2:]).returncode
with open(sys.argv[1], "a") as log:
    log.write(f"{started} {time.time()}\\n")
sys.exit(code)
'''

EVALUATOR = '''\
import os, re, subprocess, sys

def evaluate(program_path):
    env = {{**os.environ, "SWARM_BUDGET_S": {budget!r}, "PYTHONPATH": {harness!r}}}
    done = subprocess.run([sys.executable, {timer!r}, {log!r}, sys.executable, program_path],
                          capture_output=True, text=True, env=env, timeout={timeout!r})
    found = re.search(r"^score:\\s*(\\S+)", done.stdout, re.M)
    if found is None:
        return {{"combined_score": -1e9, "error": 1.0}}
    score = float(found.group(1))
    return {{"combined_score": -score, "score": score}}
'''


@dataclass(frozen=True)
class SystemResult:
    system: str
    spans: list[Span]  # each evaluation's (start, end), from the timer log
    llm_requests: int


# -- the files both systems evaluate through ----------------------------------------------------

def write_timer(scratch: Path) -> Path:
    timer = scratch / "timer.py"
    timer.write_text(TIMER)
    return timer


def initial_program() -> str:
    """train.py with its constants inside OpenEvolve's EVOLVE-BLOCK markers."""
    head, tail = (QUADRATIC / "train.py").read_text().split("import prepare", 1)
    return f"# EVOLVE-BLOCK-START\n{head.rstrip()}\n# EVOLVE-BLOCK-END\n\nimport prepare{tail}"


def write_openevolve_files(scratch: Path, timer: Path, log: Path, trial_s: float) -> tuple[Path, Path]:
    program, evaluator = scratch / "initial_program.py", scratch / "evaluator.py"
    program.write_text(initial_program())
    evaluator.write_text(EVALUATOR.format(budget=f"{trial_s:g}", harness=str(QUADRATIC), timer=str(timer),
                                          log=str(log), timeout=trial_s + 60))
    return program, evaluator


def read_spans(log: Path) -> list[Span]:
    if not log.exists():
        return []
    return [(float(a), float(b)) for a, b in (line.split() for line in log.read_text().splitlines())]


# -- the two systems ----------------------------------------------------------------------------

def openevolve_config(fake: FakeLLM, parallel: int, iterations: int, trial_s: float) -> Any:
    from openevolve.config import Config
    return Config.from_dict({
        "max_iterations": iterations, "checkpoint_interval": 1000, "log_level": "WARNING", "random_seed": 0,
        "diff_based_evolution": True, "language": "python",
        "llm": {"api_base": fake.openai_base, "api_key": "bench", "timeout": 120, "retries": 0,
                "models": [{"name": "fake", "weight": 1.0}]},
        "evaluator": {"parallel_evaluations": parallel, "cascade_evaluation": False,
                      "timeout": int(trial_s + 60), "max_retries": 0}})


def run_openevolve(fake: FakeLLM, scratch: Path, timer: Path, args: argparse.Namespace) -> SystemResult:
    from openevolve.api import run_evolution
    log = scratch / "openevolve_evaluations.log"
    program, evaluator = write_openevolve_files(scratch, timer, log, args.trial_s)
    asked_before = len(fake.requests)
    config = openevolve_config(fake, args.parallel, args.evaluations - 1, args.trial_s)
    run_evolution(str(program), str(evaluator), config=config, iterations=args.evaluations - 1,
                  output_dir=str(scratch / "openevolve_output"), cleanup=False)
    return SystemResult("OpenEvolve 0.4.0", read_spans(log), len(fake.requests) - asked_before)


def run_swarm_peer(fake: FakeLLM, scratch: Path, timer: Path, args: argparse.Namespace) -> SystemResult:
    import ray
    log = scratch / "swarm_evaluations.log"
    asked_before = len(fake.requests)
    config = llm_swarm_config(fake, args.trial_s, args.parallel, args.evaluations,
                              {"target.run": f"python {timer} {log} python train.py"})
    ray.init(address="local", namespace="swarm", num_cpus=args.parallel + 1, include_dashboard=False,
             log_to_driver=False)
    try:
        run_ledger(config, scratch / "swarm_run")
    finally:
        ray.shutdown()
    return SystemResult("swarm", read_spans(log), len(fake.requests) - asked_before)


# -- the figures (pure) -------------------------------------------------------------------------

def wall_s(spans: list[Span]) -> float:
    return max(end for _, end in spans) - min(start for start, _ in spans)


def per_hour(spans: list[Span]) -> float:
    return len(spans) * 3600 / wall_s(spans)


def busy_share(spans: list[Span], parallel: int) -> float:
    """The evaluations' seconds over what P evaluator slots could have given in the wall."""
    return sum(end - start for start, end in spans) / (parallel * wall_s(spans))


def table(results: list[SystemResult], parallel: int) -> list[str]:
    swarm = next(r for r in results if r.system == "swarm")
    lines = ["| system | evaluations | wall s | evaluations/hour | ratio to swarm | evaluator busy % | LLM requests |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.system} | {len(r.spans)} | {wall_s(r.spans):.1f} | {per_hour(r.spans):.0f} | "
                     f"{per_hour(r.spans) / per_hour(swarm.spans):.2f}x | "
                     f"{100 * busy_share(r.spans, parallel):.1f}% | {r.llm_requests} |")
    return lines


# -- main ---------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parallel", type=int, default=4, help="OpenEvolve's parallel_evaluations = swarm workers")
    parser.add_argument("--trial-s", type=float, default=10.0)
    parser.add_argument("--llm-s", type=float, default=5.0)
    parser.add_argument("--evaluations", type=int, default=40, help="of each system, the first included")
    parser.add_argument("--quick", action="store_true", help="P=2, 2 s trials, 1 s LLM, 6 evaluations")
    args = parser.parse_args()
    if args.quick:
        args.parallel, args.trial_s, args.llm_s, args.evaluations = 2, 2.0, 1.0, 6
    return args


def main() -> None:
    args = parse_args()
    os.environ["OPENAI_API_KEY"] = "bench"
    logging.getLogger("openevolve").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, FakeLLM([], responder=responder(args.llm_s)) as fake:
        scratch = Path(tmp)
        os.environ["HOME"] = tmp  # Ray writes its token there
        timer = write_timer(scratch)
        results = [run_openevolve(fake, scratch, timer, args), run_swarm_peer(fake, scratch, timer, args)]
    print(textwrap.dedent(f"""
        openevolve_peer: P={args.parallel} (OpenEvolve parallel_evaluations, swarm workers), {args.trial_s:g} s
        evaluations, fake LLM answering in {args.llm_s:g} s, {args.evaluations} evaluations asked of each
        """))
    print("\n".join(table(results, args.parallel)))


if __name__ == "__main__":
    main()
