"""The agent proposer: an external coding agent CLI edits the worker's scratch checkout.

The way people run autoresearch today (`claude -p`, `codex exec`, `aider --message`): the
prompt goes to the command's stdin and to the file named by SWARM_PROMPT_FILE; whatever the
command changes in the working tree becomes the candidate (the worker commits it and checks its
scope like any other); the first line of its output, or the message of a commit it made, is the
hypothesis. The command runs with the worker's environment, keys included (it is the user's own
tool), in its own process group, killed whole at the timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path

import git

from swarm.core.config import ProposerSpec
from workers.proposers.base import Proposal, ProposalContext, ProposalFailure
from workers.proposers.prompt import briefing_text, user_prompt

__all__ = ["AgentProposer", "AGENT_RULES"]

AGENT_RULES = """\
Make exactly one focused change by editing the files in this directory. Do not run the
experiment. Begin your output with one line: `Hypothesis: <what you change and why>`."""


class AgentProposer:
    def __init__(self, spec: ProposerSpec) -> None:
        if not spec.command:
            raise ValueError("the agent proposer needs proposer.command")
        self.command = spec.command
        self.timeout_s = spec.timeout_s

    def propose(self, context: ProposalContext) -> Proposal | ProposalFailure:
        if context.checkout is None:
            return ProposalFailure("the agent proposer needs a checkout to work in")
        prompt = (f"{context.program.strip()}\n\n{briefing_text(context.briefing)}{AGENT_RULES}\n\n"
                  f"{user_prompt(context)}\n")
        head_before = git.Repo(context.checkout).head.commit.hexsha
        with tempfile.TemporaryDirectory(prefix="swarm-prompt-") as tmp:
            prompt_file = Path(tmp) / "prompt.md"
            prompt_file.write_text(prompt)
            env = {**os.environ, "SWARM_PROMPT_FILE": str(prompt_file)}
            failure, output = self._run(prompt, context.checkout, env)
        if failure:
            return ProposalFailure(failure)
        repo = git.Repo(context.checkout)
        committed = repo.head.commit.hexsha != head_before
        if not committed and not repo.is_dirty(untracked_files=True):
            return ProposalFailure(f"the agent changed nothing; its output ends: {output[-300:]!r}")
        message = str(repo.head.commit.message) if committed else ""
        hypothesis = _first_line(output) or _first_line(message) or f"change by `{self.command}`"
        return Proposal(files={}, hypothesis=hypothesis.removeprefix("Hypothesis:").strip())

    def _run(self, prompt: str, cwd: Path, env: dict[str, str]) -> tuple[str | None, str]:
        """(why it failed or None, its output)."""
        proc = subprocess.Popen(self.command, shell=True, cwd=cwd, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", start_new_session=True)
        try:
            output, _ = proc.communicate(prompt, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the agent and whatever it started
            output, _ = proc.communicate()
            return f"the agent command timed out after {self.timeout_s:g} s", output
        if proc.returncode != 0:
            return f"the agent command exited with code {proc.returncode}: {output.strip()[-300:]}", output
        return None, output


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
