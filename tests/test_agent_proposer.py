"""The agent proposer with small scripts standing in for a coding agent CLI."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import git
import pytest

from swarm.core.config import ProposerSpec
from workers.proposers.agent import AgentProposer
from workers.proposers.base import Proposal, ProposalContext, ProposalFailure

__all__: list[str] = []

TRAIN = "LR = 0.04\n"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    work = tmp_path / "checkout"
    work.mkdir()
    repo = git.Repo.init(work)
    (work / "train.py").write_text(TRAIN)
    repo.index.add(["train.py"])
    repo.index.commit("base", author=git.Actor("t", "t@t"), committer=git.Actor("t", "t@t"))
    return work


def agent(checkout: Path, script: str, timeout_s: float = 30) -> Proposal | ProposalFailure:
    path = checkout.parent / "agent.py"
    path.write_text(script)
    spec = ProposerSpec(kind="agent", command=f"{shlex.quote(sys.executable)} {shlex.quote(str(path))}",
                        timeout_s=timeout_s)
    context = ProposalContext(program="Lower the loss.", files={"train.py": TRAIN}, checkout=checkout,
                              editable=("train.py",))
    return AgentProposer(spec).propose(context)


EDITS_IN_PLACE = """
import os, sys
prompt = sys.stdin.read()
assert prompt == open(os.environ["SWARM_PROMPT_FILE"]).read(), "stdin and the file must agree"
assert "Lower the loss." in prompt and "LR = 0.04" in prompt
open("train.py", "w").write("LR = 0.03\\n")
print("Hypothesis: a lower LR")
print("other chatter")
"""


def test_what_the_agent_changes_in_place_is_the_candidate(checkout: Path) -> None:
    result = agent(checkout, EDITS_IN_PLACE)
    assert result == Proposal(files={}, hypothesis="a lower LR")
    assert (checkout / "train.py").read_text() == "LR = 0.03\n"  # the worker commits it from here


def test_a_commit_message_is_the_hypothesis_when_the_agent_prints_nothing(checkout: Path) -> None:
    result = agent(checkout, """
import subprocess
open("train.py", "w").write("LR = 0.02\\n")
subprocess.run(["git", "-c", "user.name=a", "-c", "user.email=a@a", "commit", "-qam", "halve the LR\\n\\nbody"],
               check=True)
""")
    assert result == Proposal(files={}, hypothesis="halve the LR")


@pytest.mark.parametrize(("script", "reason"), [
    ("print('I looked and found nothing to do')",
     "the agent changed nothing; its output ends: 'I looked and found nothing to do\\n'"),
    ("import sys; print('no key'); sys.exit(3)", "the agent command exited with code 3: no key"),
], ids=["no-change", "exit-code"])
def test_an_agent_that_does_not_deliver_fails_the_proposal(checkout: Path, script: str, reason: str) -> None:
    assert agent(checkout, script) == ProposalFailure(reason)


def test_an_agent_past_its_timeout_is_killed_with_what_it_started(checkout: Path, tmp_path: Path) -> None:
    marker = tmp_path / "child-alive"
    script = f"""
import subprocess, sys, time
child = "import time, pathlib; time.sleep(3); pathlib.Path({str(marker)!r}).write_text('x')"
subprocess.Popen([sys.executable, "-c", child])
time.sleep(60)
"""
    started = time.monotonic()
    assert agent(checkout, script, timeout_s=1) == ProposalFailure("the agent command timed out after 1 s")
    assert time.monotonic() - started < 10
    time.sleep(3.5)
    assert not marker.exists()  # its child died with it


# Through the real worker loop and coordinator: the worker commits what the agent left, and
# checks its scope like any other candidate's.

AGENT_FOR_QUADRATIC = """
import pathlib, random, re, sys
sys.stdin.read()
rigged = pathlib.Path({marker!r})
text = pathlib.Path("train.py").read_text()
if "A = 1.0" in text:
    pathlib.Path("train.py").write_text(text.replace("A = 1.0", "A = 3.0"))
    print("Hypothesis: A to its optimum")
elif not rigged.exists():
    rigged.write_text("once")
    pathlib.Path("prepare.py").write_text("# rigged\\n")
    print("Hypothesis: rig the harness")
else:
    b = round(random.uniform(0, 1), 4)
    pathlib.Path("train.py").write_text(re.sub(r"B = .*", f"B = {{b}}", text))
    print(f"Hypothesis: B to {{b}}")
"""


def test_agent_changes_are_committed_judged_and_scope_checked_by_the_worker(tmp_path: Path) -> None:
    from coordinator.service import Coordinator
    from tests.test_coordinator_inprocess import events, quadratic_config, run_workers

    script = tmp_path / "agent.py"
    script.write_text(AGENT_FOR_QUADRATIC.format(marker=str(tmp_path / "rigged-once")))
    config = quadratic_config({"stop.max_trials": 8, "acceptance.confirm_runs": 0, "proposer.kind": "agent",
                               "proposer.command": f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"})
    coordinator = Coordinator(config, tmp_path / "run", "s1", resume=False)
    run_workers(coordinator, tmp_path, [AgentProposer(config.proposer)])
    coordinator.close()
    finished = {e["trial"]: e for e in events(tmp_path / "run", "trial_finished")}
    started = {e["trial"]: e for e in events(tmp_path / "run", "trial_started") if e["kind"] == "candidate"}
    by_hypothesis = {started[t]["hypothesis"]: finished[t]["status"] for t in started}
    assert by_hypothesis["A to its optimum"] == "ok"
    assert by_hypothesis["rig the harness"] == "out_of_scope"
    assert "A to its optimum" in [b.hypothesis for b in coordinator.state.history]
