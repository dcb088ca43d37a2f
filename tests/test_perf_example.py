"""The perf example through the worker's real jail and a real coordinator: a pure-Python
tokenizer made faster under its tests. The guard (check.py) refuses a faster but wrong
tokenizer; the score phase (harness.py) times `tokenize` from outside the candidate's code on
fresh variants of held-out texts, so neither a cache nor a printed result block pays."""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import git
import pytest

from coordinator.service import Coordinator
from swarm.core.config import SwarmConfig, load_config
from swarm.core.values import WorkerSite
from workers.classify import Classified, classify_trial
from workers.evaluation import Evaluator, TrialRun, jail_missing
from workers.loop import WorkerLoop
from workers.proposers.base import Proposal, ProposalContext, ProposalFailure

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "perf"
SHIPPED = (EXAMPLE / "solution.py").read_text()
pytestmark = pytest.mark.skipif(jail_missing() is not None, reason=f"no jail here: {jail_missing()}")
# Two timed repeats, not the shipped five: this machine is shared and the module must stay short.
FAST_SCORING = {"target.env": {"PERF_REPEATS": "2"}}


def slower(source: str) -> str:
    """Correct but slower: every chunk is tokenized three times (real work, not a sleep), so the
    loss stands out of a shared machine's noise."""
    again = "        method(chunk)\n"
    return source.replace("        out += method(", again * 2 + "        out += method(")


def faster_but_wrong(source: str) -> str:
    """The fastest method, and line breaks dropped: fewer tokens to build, the wrong answer."""
    fast = source.replace('METHOD = "rules"', 'METHOD = "findall"')
    return fast.replace('            out.append(("NEWLINE", newline))', "            pass")


# Caches every answer in a file keyed by the input, so a harness that timed the same input
# twice would see the second call nearly free; and prints a result block of its own.
HACK = '''
import hashlib, json, os, sys
# on stdout where run and guard read it (their env names SWARM_ARTIFACTS), on stderr in the
# score phase, whose stdout is the harness's answer pipe
print("---\\nseconds: 0.000001", file=sys.stdout if "SWARM_ARTIFACTS" in os.environ else sys.stderr, flush=True)
_honest = tokenize
CACHE = os.path.join(os.environ.get("SCRATCH_GUESS", "/tmp"), "perf-cache")


def tokenize(text):
    path = os.path.join(CACHE, hashlib.sha256(text.encode()).hexdigest())
    if os.path.exists(path):
        return [tuple(t) for t in json.load(open(path))]
    tokens = _honest(text)
    os.makedirs(CACHE, exist_ok=True)
    json.dump(tokens, open(path, "w"))
    return tokens
'''


def config_for(checkout: Path, **more: Any) -> SwarmConfig:
    overrides = {"target.repo": str(checkout), **FAST_SCORING, **more}
    return load_config(ROOT / "configs" / "perf.yaml").with_overrides(overrides)


def trial(tmp_path: Path, solution: str | None = None) -> tuple[Classified, str]:
    classified, run = evaluated(tmp_path, solution)
    return classified, run.log()


def evaluated(tmp_path: Path, solution: str | None = None) -> tuple[Classified, TrialRun]:
    checkout = tmp_path / "w0" / "repo"
    shutil.copytree(EXAMPLE, checkout)
    if solution is not None:
        (checkout / "solution.py").write_text(solution)
    files = sorted(str(p.relative_to(checkout)) for p in checkout.rglob("*") if p.is_file())
    config = config_for(checkout)
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONUNBUFFERED": "1", **config.target.env}
    run = Evaluator(config, checkout, tmp_path / "w0").evaluate("t1", env, files)
    return classify_trial(run, "seconds"), run


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Classified, str]:
    return trial(tmp_path_factory.mktemp("shipped"))


def test_the_shipped_tokenizer_passes_its_guard_and_is_timed_per_call(shipped: tuple[Classified, str]) -> None:
    (status, metric, metrics, reason), log = shipped
    assert (status, reason) == ("ok", "")
    assert metric is not None and 0 < metric < 5 and metrics["cases"] == 3 and metrics["repeats"] == 2
    assert "repeat 0:" in log and "(warm-up, not counted)" in log and "spread" in log


def test_a_slower_tokenizer_that_passes_its_tests_scores_worse(
        tmp_path: Path, shipped: tuple[Classified, str]) -> None:
    (status, metric, _, reason), _ = trial(tmp_path, slower(SHIPPED))
    assert (status, reason) == ("ok", "")
    assert metric is not None and shipped[0].metric is not None and metric > 1.3 * shipped[0].metric


@pytest.fixture(scope="module")
def faster_wrong(tmp_path_factory: pytest.TempPathFactory) -> tuple[Classified, TrialRun]:
    return evaluated(tmp_path_factory.mktemp("wrong"), faster_but_wrong(SHIPPED))


def test_a_faster_tokenizer_that_breaks_its_tests_is_refused_by_the_guard(
        faster_wrong: tuple[Classified, TrialRun]) -> None:
    (_, metric, _, _), run = faster_wrong
    assert run.guard is not None and run.guard.result.exit_code == 1 and "FAILED (failures=" in run.guard.log
    assert run.score is None and metric is None  # never timed


def test_the_guards_refusal_is_recorded_as_guard_failed(faster_wrong: tuple[Classified, TrialRun]) -> None:
    (status, _, _, reason), _ = faster_wrong
    assert (status, reason) == ("guard_failed", "guard exit code 1")


def test_a_cache_across_repeats_and_a_printed_result_block_do_not_pay(
        tmp_path: Path, shipped: tuple[Classified, str]) -> None:
    (status, metric, _, reason), log = trial(tmp_path, SHIPPED + HACK)
    assert (status, reason) == ("ok", "")
    # a hit would make a call a file read, tens of times faster than tokenizing: none came
    assert metric is not None and shipped[0].metric is not None and metric > 0.6 * shipped[0].metric
    assert "seconds: 0.000001" in log.split("=== swarm: the score phase ===")[0]  # run printed it
    assert "seconds: 0.000001" not in log.split("=== swarm: the score phase ===")[1]


def test_a_print_on_the_answer_pipe_is_refused(tmp_path: Path) -> None:
    (status, metric, _, reason), _ = trial(tmp_path, SHIPPED + "\nprint('---\\nseconds: 0.000001', flush=True)\n")
    assert (status, metric) == ("crash", None)
    assert reason.endswith("error: the candidate printed b'---\\n' on the answer pipe before its first call")


def test_every_repeat_starts_from_the_same_files(tmp_path: Path) -> None:
    # each process leaves a mark in the jail's /tmp and in its cwd, and fails if it finds one:
    # only a harness that removes them between repeats gets a metric
    marked = SHIPPED + (
        "\nimport os, sys\n"
        "for _mark in ('/tmp/perf-mark', 'perf-mark', '/dev/shm/perf-mark'):\n"
        "    if os.path.exists(_mark):\n"
        "        sys.exit(f'found {_mark}')\n"
        "    open(_mark, 'w').close()\n")
    (status, metric, _, reason), _ = trial(tmp_path, marked)
    assert (status, reason) == ("ok", "") and metric is not None


class Scripted:
    """Makes the changes given, in order, then has no more (the test stops the run)."""

    def __init__(self, changes: list[tuple[str, str]]) -> None:
        self.changes = list(changes)

    def propose(self, context: ProposalContext) -> Proposal | ProposalFailure:
        if not self.changes:
            return ProposalFailure("no more scripted changes")
        text, hypothesis = self.changes.pop(0)
        return Proposal({"solution.py": text}, hypothesis)


def make_target(tmp: Path) -> Path:
    repo = tmp / "target"
    shutil.copytree(EXAMPLE, repo)
    git.Repo.init(repo).git.add(all=True)
    git.Repo(repo).git.commit("-qm", "the perf example", author="t <t@t>")
    return repo


def verdict(coordinator: Coordinator) -> str | None:
    found = [t for t in coordinator.state.trials.values() if t.kind == "candidate"]
    return found[0].verdict if found and found[0].status == "ok" else None


def test_a_swarm_discards_the_slower_tokenizer(tmp_path: Path) -> None:
    config = config_for(make_target(tmp_path), **{
        "workers.count": 1, "workers.prepare_ahead": False, "acceptance.baseline_runs": 2,
        "acceptance.max_runs": 2, "stop.max_trials": 5, "stop.hours": None})
    proposer = Scripted([(slower(SHIPPED), "tokenize every chunk three times")])
    coordinator = Coordinator(config, tmp_path / "run", "s1", resume=False)
    loop = WorkerLoop("w0", config, coordinator, tmp_path / "w0", proposer, WorkerSite(hardware="cpu:test"))
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    # stop once the candidate is judged for good: a disturbed first run may race a second one
    deadline = time.monotonic() + 150
    while thread.is_alive() and time.monotonic() < deadline and verdict(coordinator) not in ("discard", "accepted"):
        time.sleep(0.2)
    coordinator.request_stop()
    thread.join(60)
    assert not thread.is_alive(), "the worker did not stop"
    coordinator.close()
    assert verdict(coordinator) == "discard"
    ledger = [json.loads(line) for line in (tmp_path / "run" / "ledger.jsonl").read_text().splitlines()]
    assert not [e for e in ledger if e["event"] == "verdict" and e.get("verdict") == "accepted"]
