"""What an LLM proposer is told."""

from __future__ import annotations

from swarm.core.values import TrialDigest
from workers.proposers.base import AcceptedChange, ProposalContext
from workers.proposers.prompt import FORMAT_RULES, system_prompt, user_prompt

__all__: list[str] = []

CONTEXT = ProposalContext(
    program="Lower the loss.", files={"train.py": "LR = 0.04"}, editable=("train.py",), readonly=("prepare.py",),
    recent=(TrialDigest("00001", "w0", "LR up", "ok", 1.25, "discard"),
            TrialDigest("00002", "w1", "broke it", "crash", None, None)),
    winners=(AcceptedChange("DEPTH 4 -> 3", "val_bpb=3.01", "-DEPTH = 4\n+DEPTH = 3"),),
    last_failure="your last change (broke it) ended as crash: exit code 1\nTraceback: boom")


def test_the_system_prompt_is_the_stable_part() -> None:
    system = system_prompt("Lower the loss.")
    assert "Lower the loss." in system and FORMAT_RULES in system
    assert system == system_prompt("Lower the loss.")  # same every proposal: cacheable


def test_the_user_prompt_carries_files_trials_winners_and_the_own_failure() -> None:
    text = user_prompt(CONTEXT)
    assert "# Files you may edit (train.py)\n\ntrain.py\n```\nLR = 0.04\n```" in text
    assert "- [discard] 1.25: LR up\n\n- [crash] no metric: broke it" in text
    assert "## DEPTH 4 -> 3 (val_bpb=3.01)\n```diff\n-DEPTH = 4\n+DEPTH = 3\n```" in text
    assert ("# Your own last trial failed\nyour last change (broke it) ended as crash: exit code 1\n"
            "Traceback: boom") in text
    assert "# Never change: prepare.py" in text
    assert text.endswith("Propose your next change now.")
