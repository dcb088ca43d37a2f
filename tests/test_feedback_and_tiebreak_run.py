"""Feedback, a held-out metric, tie-breakers and proposer.context through a real run: the
coordinator in-process, a worker loop in a thread, real git, every trial's commands in the jail
(where this machine can make one). No Ray: tests/test_skill_example.py runs the skill target
on the whole swarm.

The target: `rules.py` (editable) lists rules; `check.py` (readonly, the score phase) passes
one case per required rule present, counts tokens as the characters of the rules, prints a
held-out pass rate, and writes which cases failed to SWARM_FEEDBACK_FILE.
"""

from __future__ import annotations

import json
import textwrap
import threading
from pathlib import Path
from typing import Any

import git
import pytest
import yaml

from coordinator.service import Coordinator
from swarm.core.config import load_config
from swarm.core.values import WorkerSite
from swarm.shell.driver import resolve_target_repo
from swarm.shell.report.writer import write_report
from workers.evaluation import jail_missing
from workers.feedback import FEEDBACK_BYTES, read_feedback, without_heldout
from workers.loop import WorkerLoop
from workers.proposers.base import Proposal, ProposalContext, ProposalFailure

CHECK = textwrap.dedent('''\
    import os, sys
    print("secret held-out line: pass_rate_heldout was", 0.25, flush=True)
    sys.path.insert(0, os.environ["SWARM_ARTIFACTS"])
    from rules import RULES
    REQUIRED = ["greet", "sign"]
    failed = [r for r in REQUIRED if r not in RULES]
    with open(os.environ["SWARM_FEEDBACK_FILE"], "w") as f:
        for rule in failed:
            f.write(f"case {rule}: failed, the skill has no rule {rule!r}\\n")
    print("---")
    print("pass_rate:", (len(REQUIRED) - len(failed)) / len(REQUIRED))
    print("tokens:", sum(len(r) for r in RULES))
    print("pass_rate_heldout:", 0.5 if "greet" in RULES else 0.0)
    ''')
SEAL = "mkdir -p $SWARM_ARTIFACTS && cp rules.py $SWARM_ARTIFACTS/"


def rules(*names: str) -> str:
    return f"RULES = {list(names)!r}\n"


def make_target(tmp_path: Path) -> Path:
    repo = tmp_path / "target"
    repo.mkdir()
    (repo / "rules.py").write_text(rules("padding-padding"))
    (repo / "check.py").write_text(CHECK)
    (repo / "program.md").write_text("Make every case pass with as few tokens as you can.\n")
    git.Repo.init(repo).git.add(all=True)
    git.Repo(repo).git.commit("-qm", "the target", author="t <t@t>")
    return repo


def write_config(tmp_path: Path, repo: Path, isolation: str) -> Path:
    (tmp_path / "LEARNED.md").write_text("# Lessons\n- short rules pay: tokens break ties\n")
    config = {
        "name": "rules",
        "target": {"repo": str(repo), "editable": ["rules.py"], "readonly": ["check.py"], "run": SEAL,
                   "score": "python check.py", "budget_s": 1, "timeout_s": 60,
                   "metric": {"name": "pass_rate", "direction": "maximize", "heldout": "pass_rate_heldout"},
                   "tiebreak": [{"name": "tokens", "direction": "minimize"}]},
        "sandbox": {"isolation": isolation},
        "program": "program.md",
        "workers": {"count": 1, "cpus_per_worker": 1, "prepare_ahead": False},
        "proposer": {"kind": "mutate", "context": ["LEARNED.md"]},
        "acceptance": {"baseline_runs": 2, "max_runs": 3},
        "stop": {"max_trials": 30},
    }
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Recording:
    """Makes the changes given, in order, then stops the run; keeps every context it was shown."""

    def __init__(self, changes: list[tuple[str, str]]) -> None:
        self.changes, self.seen = list(changes), []
        self.stop: Any = None

    def propose(self, context: ProposalContext) -> Proposal | ProposalFailure:
        self.seen.append(context)
        if not self.changes:
            self.stop()
            return ProposalFailure("no more scripted changes")
        text, hypothesis = self.changes.pop(0)
        return Proposal({"rules.py": text}, hypothesis)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("rules")
    isolation = "namespaces" if jail_missing() is None else "none"
    config_path = write_config(tmp, make_target(tmp), isolation)
    config = resolve_target_repo(load_config(config_path), config_path)
    proposer = Recording([
        (rules("padding-padding", "greet"), "add greet"),  # 0.5 -> a clear gain
        (rules("greet"), "drop the padding"),  # pass rate tied, 15 fewer tokens
        (rules("greet", "sign", "more-padding"), "add sign"),  # 1.0
        (rules("greet", "sign", "more-padding", "extra"), "add extra"),  # tied, more tokens
        ("RULES = [\n", "break it"),  # the score phase crashes: its log tail is shown
    ])
    coordinator = Coordinator(config, tmp / "run", "s1", resume=False)
    proposer.stop = coordinator.request_stop
    loop = WorkerLoop("w0", config, coordinator, tmp / "w0", proposer, WorkerSite(hardware="cpu:test"))
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    thread.join(180)
    assert not thread.is_alive(), "the worker did not stop"
    coordinator.close()
    ledger = [json.loads(line) for line in (tmp / "run" / "ledger.jsonl").read_text().splitlines()]
    return {"tmp": tmp, "proposer": proposer, "ledger": ledger, "state": coordinator.state}


def candidates(run: dict[str, Any]) -> dict[str, Any]:
    state = run["state"]
    return {t.hypothesis: t for t in state.trials.values() if t.kind == "candidate"}


def test_a_tie_on_the_metric_is_broken_by_tokens_and_more_tokens_lose(finished_run: dict[str, Any]) -> None:
    found = candidates(finished_run)
    assert {h: t.verdict for h, t in found.items()} == {
        "add greet": "accepted", "drop the padding": "accepted", "add sign": "accepted", "add extra": "discard",
        "break it": None}
    assert found["break it"].status == "crash"
    verdicts = {e["trial"]: e for e in finished_run["ledger"] if e["event"] == "verdict"}
    assert "tokens" in verdicts[found["drop the padding"].id]["reason"]


def test_every_metric_is_in_results_tsv_and_the_trailers_but_the_heldout_one_stays_out_of_git(
        finished_run: dict[str, Any]) -> None:
    lines = [line.split("\t") for line in (finished_run["tmp"] / "run" / "results.tsv").read_text().splitlines()]
    assert lines[0][-2:] == ["tokens", "pass_rate_heldout"]
    kept = {row[4]: row for row in lines[1:] if row[3] == "keep"}
    assert kept["drop the padding"][-2:] == ["5", "0.5"]
    log = git.Repo(finished_run["tmp"] / "run" / "repo").git.log("swarm/best", "--format=%B")
    assert "Swarm-Metric: pass_rate=1" in log and "Swarm-Metric: tokens=" in log
    assert "heldout" not in log


def test_the_feedback_is_kept_and_shown_to_its_proposer_and_to_the_digest(finished_run: dict[str, Any]) -> None:
    found = candidates(finished_run)
    assert found["add greet"].feedback == "case sign: failed, the skill has no rule 'sign'\n"
    seen = finished_run["proposer"].seen
    after_greet = seen[1]  # asked right after "add greet" was scored
    assert "(add greet)" in after_greet.feedback and "no rule 'sign'" in after_greet.feedback
    assert any("no rule 'sign'" in t.feedback for t in seen[-1].recent)


def test_no_proposer_is_ever_shown_the_heldout_metric(finished_run: dict[str, Any]) -> None:
    seen = finished_run["proposer"].seen
    assert seen[-1].last_failure and "break it" in seen[-1].last_failure  # the crash's log tail was shown
    shown = repr(seen)
    assert "pass_rate_heldout" not in shown and "held-out line" not in shown
    finished = [e for e in finished_run["ledger"] if e["event"] == "trial_finished"]
    assert all(e["metrics"].get("pass_rate_heldout") is not None for e in finished if e["status"] == "ok")


def test_proposer_context_is_recorded_when_the_run_starts_and_handed_to_every_proposal(
        finished_run: dict[str, Any]) -> None:
    started = finished_run["ledger"][0]
    assert list(started["briefing"].values()) == ["# Lessons\n- short rules pay: tokens break ties\n"]
    assert all(c.briefing and "tokens break ties" in c.briefing[0].text for c in finished_run["proposer"].seen)


def test_the_report_says_whether_the_gains_generalise_and_the_changelog_never_names_the_heldout_metric(
        finished_run: dict[str, Any]) -> None:
    run_dir = finished_run["tmp"] / "run"
    paths = write_report(run_dir)
    assert [p.name for p in paths][-1] == "CHANGELOG.md"
    report = (run_dir / "report.md").read_text()
    assert "| does it generalise | yes: pass_rate_heldout 0 -> 0.5, better on the held-out cases too |" in report
    assert "| tokens | 21 (baseline 15) |" in report  # greet, sign, more-padding
    changelog = (run_dir / "CHANGELOG.md").read_text()
    assert "drop the padding" in changelog and "heldout" not in changelog


# -- the pieces ------------------------------------------------------------------------------

def test_feedback_is_capped_and_a_link_is_not_followed(tmp_path: Path) -> None:
    big, link = tmp_path / "big", tmp_path / "link"
    big.write_text("x" * (FEEDBACK_BYTES * 3))
    link.symlink_to(big)
    assert len(read_feedback(big)) == FEEDBACK_BYTES
    assert read_feedback(link) == "" and read_feedback(tmp_path / "none") == ""


def test_without_heldout_drops_the_lines_that_name_it_and_no_others() -> None:
    text = "pass_rate: 0.5\npass_rate_heldout: 0.9\nthe heldout set\nmy_pass_rate_heldout_x: 1\n"
    kept = "pass_rate: 0.5\nthe heldout set\nmy_pass_rate_heldout_x: 1\n"
    assert without_heldout(text, ["pass_rate_heldout"]) == kept
    assert without_heldout(text, []) == text


def test_a_context_file_that_is_missing_is_refused_naming_it(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, make_target(tmp_path), "none")
    (tmp_path / "LEARNED.md").unlink()
    with pytest.raises(Exception, match=r"proposer.context 'LEARNED.md' is neither in"):
        resolve_target_repo(load_config(config_path), config_path)
