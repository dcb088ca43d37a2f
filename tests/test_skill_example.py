"""The skill example (examples/skill, configs/skill.yaml): a SKILL.md scored by yes/no
expectations in skill-creator's evals.json format, against a fake model under test that obeys
the rules it finds in its system prompt (tests/fake_skill_model.py), so every figure here is exact.

By hand (the harness as a subprocess), through the worker's real jail (the fake server reached
only through `sandbox.network`), and in a whole swarm whose LLM proposer adds rules to SKILL.md,
then trims it (a tie on the pass rate, won on tokens) and pads it (the same tie, lost on tokens).
The held-out cases must never reach the proposer, its feedback or the score's log."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import git
import pytest

from swarm.core.config import SwarmConfig, load_config
from swarm.core.envvars import expanded_env
from tests.fake_llm import FakeLLM, Step
from tests.fake_skill_model import IMPROVED_RULES, SkillModel, skill_server
from workers.classify import classify_trial
from workers.evaluation import Evaluator, jail_missing

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "skill"
HARNESS = EXAMPLE / "harness.py"
HELDOUT = json.loads((EXAMPLE / "heldout" / "evals.json").read_text())["evals"]
LAST_RULE = "- Group the changes under headings such as `### Features` and `### Fixes`."
NO_JAIL = pytest.mark.skipif(jail_missing() is not None, reason=f"no jail here: {jail_missing()}")
# The whole swarm on the skill target takes about two minutes on CI's 2 cores (six trials, each
# scoring every case through the jail and the relay): run on demand with -m slow. The same rules
# (a tie broken by tokens, the held-out metric kept out of git and the prompts) run in CI in
# tests/test_feedback_and_tiebreak_run.py, and one jailed trial of this target below.
SWARM_RUN_IS_SLOW = pytest.mark.slow

# The shipped SKILL.md on the 8 visible cases: 7 of the 32 checks pass; its 2 plain-English
# expectations are ungraded without a judge, and both fail with one. With IMPROVED_RULES all pass.
BASELINE, BASELINE_JUDGED = 7 / 32, 7 / 34


def rate(value: float) -> object:
    """A pass rate as the result block prints it (6 decimals)."""
    return pytest.approx(value, abs=1e-6)


def improved_skill() -> str:
    return (EXAMPLE / "SKILL.md").read_text() + "\n".join(IMPROVED_RULES) + "\n"


def heldout_traces() -> list[str]:
    """Text that would show a held-out case: its prompt's lines, its project, its id as named."""
    lines = [line for case in HELDOUT for line in case["prompt"].splitlines()]
    return [*lines, "orbitdb-lite", "mosaic-tiles", *(f"ase {c['id']}" for c in HELDOUT),
            *(f"case.{c['id']}" for c in HELDOUT)]


def leaks(text: str) -> list[str]:
    return [t for t in heldout_traces() if t in text]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeLLM, SkillModel]]:
    fake, model = skill_server()
    with fake:
        yield fake, model


def skill_env(fake: FakeLLM, judge: bool, repeats: int = 1) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SKILL_", "SWARM_"))}
    env.update({"SKILL_MODEL": "openai/skill-model", "SKILL_API_BASE": fake.openai_base,
                "SKILL_REPEATS": str(repeats), "SKILL_RETRIES": "0"})
    if judge:
        env["SKILL_JUDGE_MODEL"] = "openai/judge"
    return env


def harness(*args: str, env: dict[str, str]) -> tuple[str, dict[str, str]]:
    done = subprocess.run([sys.executable, str(HARNESS), *args], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    block = done.stdout.rpartition("\n---\n")[2]
    return done.stdout, dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)


def test_the_shipped_skill_scores_its_baseline_and_the_feedback_names_only_visible_cases(
        server: tuple[FakeLLM, SkillModel], tmp_path: Path) -> None:
    fake, model = server
    env = {**skill_env(fake, judge=False, repeats=2), "SWARM_FEEDBACK_FILE": str(tmp_path / "fb" / "feedback.txt")}
    out, block = harness("score", "--skill", str(EXAMPLE / "SKILL.md"), env=env)
    assert float(block["pass_rate"]) == rate(BASELINE)
    assert float(block["pass_rate_heldout"]) == rate(4 / 14)
    assert (block["passed"], block["graded"], block["ungraded"], block["repeats"]) == ("14", "64", "4", "2")
    assert float(block["case.8"]) == rate(3 / 5) and float(block["tokens"]) > 0
    assert "left ungraded (no judge: set SKILL_JUDGE_MODEL)" in out
    feedback = (tmp_path / "fb" / "feedback.txt").read_text()
    assert "Case 1: 4 of 5 expectations failed, over 2 run(s)" in feedback
    assert "FAILED 2/2: 'contains: (#398)': '(#398)' is not in the answer" in feedback
    assert "| Sure! Here are the release notes for tidyfs 2.4.0." in feedback  # the answer's excerpt
    assert leaks(feedback) == [] and leaks(out) == []
    assert any("orbitdb-lite" in seen["user"] for seen in model.seen)  # held-out cases did run


def test_rules_added_to_the_skill_raise_the_pass_rate_in_a_benchmark_as_skill_creator_writes_it(
        server: tuple[FakeLLM, SkillModel], tmp_path: Path) -> None:
    fake, _ = server
    (tmp_path / "SKILL.md").write_text(improved_skill())
    harness("benchmark", "--skill", str(tmp_path / "SKILL.md"), "--out", str(tmp_path / "benchmark.json"),
            "--heldout", env=skill_env(fake, judge=True, repeats=2))
    bench = json.loads((tmp_path / "benchmark.json").read_text())
    assert bench["metadata"]["runs_per_configuration"] == 2 and bench["metadata"]["skill_name"] == "release-notes"
    assert bench["metadata"]["evals_run"] == [*range(1, 9), 101, 102, 103, 104]
    summary = bench["run_summary"]
    for configuration in ("with_skill", "without_skill"):
        for measure in ("pass_rate", "time_seconds", "tokens"):
            assert set(summary[configuration][measure]) == {"mean", "stddev", "min", "max"}
    # every case, held-out ones too, passes every expectation with the rules; without a skill few do
    assert summary["with_skill"]["pass_rate"] == {"mean": 1.0, "stddev": 0.0, "min": 1.0, "max": 1.0}
    assert summary["without_skill"]["pass_rate"]["mean"] < 0.3
    assert summary["delta"]["pass_rate"].startswith("+0.") and summary["delta"]["tokens"].startswith("+")
    runs = bench["runs"]
    assert len(runs) == 12 * 2 * 2
    assert {"eval_id", "configuration", "run_number", "result", "expectations"} <= set(runs[0])
    assert all(e["passed"] is not None for r in runs for e in r["expectations"])  # the judge graded the rest
    assert any("may not differentiate" in note for note in bench["notes"])


def jailed_config(checkout: Path, fake: FakeLLM, overrides: dict[str, object] | None = None) -> SwarmConfig:
    return load_config(ROOT / "configs" / "skill.yaml", {
        "target.repo": str(checkout), "sandbox.network": [f"127.0.0.1:{fake.port}"],
        "target.env.SKILL_MODEL": "openai/skill-model", "target.env.SKILL_API_BASE": fake.openai_base,
        "target.env.SKILL_JUDGE_MODEL": "openai/judge", "target.env.SKILL_REPEATS": "1",
        **(overrides or {})})


@NO_JAIL
def test_a_trial_through_the_workers_jail_reaches_the_model_through_sandbox_network(
        server: tuple[FakeLLM, SkillModel], tmp_path: Path) -> None:
    fake, _ = server
    checkout = tmp_path / "w0" / "repo"
    shutil.copytree(EXAMPLE, checkout)
    files = sorted(str(p.relative_to(checkout)) for p in checkout.rglob("*") if p.is_file())
    config = jailed_config(checkout, fake)
    # as the worker makes it: its PATH, then target.env expanded on its machine
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONUNBUFFERED": "1",
           **expanded_env(config.target.env)}
    run = Evaluator(config, checkout, tmp_path / "w0").evaluate("t1", env, files)
    status, metric, metrics, reason = classify_trial(run, "pass_rate")
    assert (status, reason) == ("ok", ""), run.log()[-3000:]
    assert metric == rate(BASELINE_JUDGED) and metrics["pass_rate_heldout"] == rate(4 / 15)
    assert "sealed SKILL.md" in run.log()
    assert "Case 2: 4 of 4 expectations failed" in run.feedback() and leaks(run.feedback()) == []


# The swarm's scripted proposer: all the rules at once (the pass rate to 1), then the shipped
# SKILL.md's opening sentence, which the front matter's description already says, dropped (the
# same pass rate for fewer tokens), then a line of filler added (the same pass rate, more tokens).
OPENING = "# Release notes\n\nWrite the release notes for the release the user describes.\n"
FILLER = "- Write in a clear, friendly and professional voice, as a careful technical writer would."
ADD_RULES = "add the rules"
DROP_OPENING = "drop the opening sentence"
ADD_FILLER = "add a line on voice"


def scripted_edit(hypothesis: str, search: str, replace: str) -> Step:
    return Step(f"Hypothesis: {hypothesis}\nSKILL.md\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n")


@pytest.fixture(scope="module")
def swarm_run(server: tuple[FakeLLM, SkillModel], tmp_path_factory: pytest.TempPathFactory,
              ray_home: Path) -> dict[str, Any]:
    """One real swarm on the skill target (Ray, the jail, the harness, the fake model), its
    proposer scripted: ADD_RULES, DROP_OPENING, ADD_FILLER, then replies with no edit."""
    if jail_missing() is not None:
        pytest.skip(f"no jail here: {jail_missing()}")
    pytest.importorskip("ray")
    from swarm.shell.driver import RunOptions, resolve_target_repo, run_swarm
    from tests.conftest import local_ray

    fake, _ = server
    run_dir = tmp_path_factory.mktemp("skill-swarm") / "run"
    script = [
        scripted_edit(ADD_RULES, LAST_RULE, "\n".join([LAST_RULE, *IMPROVED_RULES])),
        scripted_edit(DROP_OPENING, OPENING.rstrip("\n"), "# Release notes"),
        scripted_edit(ADD_FILLER, LAST_RULE, f"{LAST_RULE}\n{FILLER}"),
        Step("no usable answer")]
    with FakeLLM(script) as proposer, local_ray(ray_home, "swarm-skill", 2, OPENAI_API_KEY="test-key"):
        # keep-if-better on one run each: the fake model is deterministic, so one run tells;
        # proposals one after another (no preparing ahead), so each edit is made on the last best;
        # max_trials counts baselines too: 3 candidates, each accepted one followed by a baseline
        config = resolve_target_repo(jailed_config(EXAMPLE, fake, {
            "workers.count": 1, "workers.prepare_ahead": False, "stop.max_trials": 6,
            "acceptance.baseline_runs": 1, "acceptance.false_accept": 0.5, "proposer.model": "openai/fake-proposer",
            "proposer.api_base": proposer.openai_base, "proposer.retry_base_s": 0.1,
            "proposer.price": {"input_per_mtok": 0.0, "output_per_mtok": 0.0}}), ROOT / "configs" / "skill.yaml")
        status = run_swarm(RunOptions(config, run_dir))
    ledger = [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]
    return {"status": status, "requests": proposer.requests, "ledger": ledger, "run_dir": run_dir}


def candidate_events(ledger: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each candidate's hypothesis: its trial_finished event, with its verdict and reason added."""
    started = {e["trial"]: e["hypothesis"] for e in ledger
               if e["event"] == "trial_started" and e["kind"] == "candidate"}
    verdicts = {e["trial"]: e for e in ledger if e["event"] == "verdict"}
    return {started[e["trial"]]: {**e, "verdict": verdicts.get(e["trial"], {}).get("verdict"),
                                  "why": verdicts.get(e["trial"], {}).get("reason")}
            for e in ledger if e["event"] == "trial_finished" and e["trial"] in started}


@NO_JAIL
@pytest.mark.ray
@SWARM_RUN_IS_SLOW
def test_a_swarm_whose_proposer_adds_rules_raises_the_pass_rate_and_never_sees_a_heldout_case(
        swarm_run: dict[str, Any]) -> None:
    status = swarm_run["status"]
    assert status.accepted >= 1 and status.baseline is not None and status.best is not None, status
    assert status.baseline.mean == rate(BASELINE_JUDGED) and status.best.mean == rate(1.0)
    found = candidate_events(swarm_run["ledger"])
    assert found[ADD_RULES]["verdict"] == "accepted" and found[ADD_RULES]["why"] == ""  # won on the metric
    assert found[ADD_RULES]["metrics"]["pass_rate_heldout"] == rate(1.0)  # the rules carry over
    sent = json.dumps([r["body"] for r in swarm_run["requests"]])
    assert swarm_run["requests"] and leaks(sent) == []
    assert "fix: crash when the config file is empty (#412)" in sent  # the visible cases are shown (context)
    assert "pass_rate_heldout" not in sent


@NO_JAIL
@pytest.mark.ray
@SWARM_RUN_IS_SLOW
def test_in_that_swarm_a_tie_on_the_pass_rate_is_broken_by_tokens_and_more_tokens_lose(
        swarm_run: dict[str, Any]) -> None:
    found = candidate_events(swarm_run["ledger"])
    assert list(found) == [ADD_RULES, DROP_OPENING, ADD_FILLER]
    assert all(found[h]["status"] == "ok" and found[h]["metric"] == rate(1.0) for h in found)  # tied
    tokens = {h: found[h]["metrics"]["tokens"] for h in found}
    assert tokens[DROP_OPENING] < tokens[ADD_RULES] < tokens[ADD_FILLER]
    assert (found[DROP_OPENING]["verdict"], found[DROP_OPENING]["why"]) == (
        "accepted", "tied on the metric, better on tokens")
    assert found[ADD_FILLER]["verdict"] == "discard"
    assert swarm_run["status"].accepted == 2
    best = git.Repo(swarm_run["run_dir"] / "repo").git.show("swarm/best:SKILL.md") + "\n"
    assert best == improved_skill().replace(OPENING, "# Release notes\n")  # every rule, no opening, no filler
