"""What an LLM proposer is told: pure functions from a ProposalContext to chat messages.

The system message is the stable prefix (the reply format and program.md), the same for every
proposal of a run, so providers can cache it. The user message holds what changes: the files
of the baseline and what the swarm has tried.
"""

from __future__ import annotations

from swarm.core.values import ContextFile, TrialDigest
from workers.proposers.base import ProposalContext

__all__ = ["FORMAT_RULES", "system_prompt", "briefing_text", "user_prompt", "retry_prompt"]

FORMAT_RULES = """\
Reply with exactly one focused change, in this plain-text format and nothing else:

Hypothesis: <one line: what you change and why you expect the metric to improve>
<path of the file>
<<<<<<< SEARCH
<the exact lines to replace, copied from the file>
=======
<the new lines>
>>>>>>> REPLACE

Several SEARCH/REPLACE blocks are allowed, each after its file's path. The SEARCH text must
match the file exactly, in one place. An empty SEARCH creates a new file. Change only files
you may edit."""


def system_prompt(program: str, briefing: tuple[ContextFile, ...] = ()) -> str:
    return (f"You are one of several research agents improving the same code in parallel. "
            f"Each of your proposals is trained and scored; the best version so far is kept.\n\n"
            f"# Your instructions (program.md)\n\n{program.strip()}\n\n{briefing_text(briefing)}"
            f"# Reply format\n\n{FORMAT_RULES}\n")


def briefing_text(briefing: tuple[ContextFile, ...]) -> str:
    """The files the config hands every proposer (proposer.context), each under its name."""
    return "".join(f"# Given to you with the instructions: {f.name}\n\n{f.text.strip()}\n\n" for f in briefing)


def user_prompt(context: ProposalContext, max_recent: int = 20) -> str:
    parts = [f"# Files you may edit ({', '.join(context.editable) or 'as listed'})"]
    for path, text in sorted(context.files.items()):
        parts.append(f"{path}\n```\n{text}{'' if text.endswith(chr(10)) else chr(10)}```")
    if context.recent:
        parts.append("# Recent trials of all workers (newest last; do not repeat what failed)")
        parts += [_trial_line(t) for t in context.recent[-max_recent:]]
    if context.winners:
        parts.append("# Latest accepted changes (newest first)")
        parts += [f"## {w.hypothesis} ({w.metric or 'metric not recorded'})\n```diff\n{w.diff}\n```"
                  for w in context.winners]
    if context.last_failure:
        parts.append(f"# Your own last trial failed\n{context.last_failure}")
    if context.feedback:
        parts.append(f"# What the checks said of your own last change\n{context.feedback.strip()}")
    if context.readonly:
        parts.append(f"# Never change: {', '.join(context.readonly)}")
    parts.append("Propose your next change now.")
    return "\n\n".join(parts)


def retry_prompt(error: str) -> str:
    return (f"That reply could not be used: {error}\n\n"
            f"Reply again with one change in the required format.")


def _trial_line(trial: TrialDigest) -> str:
    shown = f"{trial.metric:.6g}" if trial.metric is not None else "no metric"
    said = "".join(f"\n    | {line}" for line in trial.feedback.splitlines() if line.strip())
    return f"- [{trial.verdict or trial.status}] {shown}: {trial.hypothesis}{said}"
