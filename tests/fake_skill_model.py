"""A model under test for the skill example that obeys the rules it finds in its system prompt.

It writes release notes (or their JSON summary) from the changes listed in the user message
(`- kind: text (#N)` lines), and each habit of a good writer is off until SKILL.md asks for it
in words a rule would use (RULES). So the pass rate of examples/skill depends on SKILL.md, and
on nothing else, deterministically. Token usage grows with the prompt and the answer (about
four characters a token), so a longer SKILL.md or a wordier answer costs tokens.

It also plays the judge: a request for the judge's model is answered from a table of
expectation fragments to what the answer must hold (JUDGE). Served by tests/fake_llm.py's
FakeLLM through its `responder` hook, so it speaks OpenAI's real wire protocol.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fake_llm import FakeLLM, Step

__all__ = ["RULES", "JUDGE", "IMPROVED_RULES", "SkillModel", "answer", "skill_server"]

# What in a system prompt switches each habit on (searched in its lower-cased text).
RULES: dict[str, str] = {
    "title": r"title",
    "grouped": r"\bgroup|heading",
    "no_chatter": r"no (preamble|introduction|chatter)|without (a |any )?(preamble|introduction)",
    "pr_numbers": r"pull request numbers?|pr numbers?",
    "skip_internal": r"(leave out|omit|skip|drop|exclude)\b[^.\n]{0,60}\b(chores?|internal)",
    "breaking_first": r"breaking",
    "migration": r"what (users|they|readers) (must|should|need to) do",
    "concise": r"one line (per|for each|a) change|under \d+ words",
    "json_only": r"only (a |the |one )?json",
}

# Rules a good SKILL.md adds to the shipped one, each worded so RULES finds it.
IMPROVED_RULES = [
    "- No preamble and no sign-off: the first line is the title, the last line is the last change.",
    "- Keep the pull request numbers as written, e.g. `(#412)`.",
    "- Leave out chores and other internal changes (chore, ci, test, refactor, docs).",
    "- Put breaking changes first, under `### Breaking changes`, and say what users must do before "
    "they upgrade.",
    "- Keep to one line per change, and the whole note under 120 words.",
    "- When asked for JSON, reply with only a JSON object "
    '`{"version": "...", "breaking": true|false, "highlights": ["..."]}`, no code fence.',
]

# The judge's verdicts: an expectation holding the key passes when the test holds for the answer.
JUDGE: dict[str, Callable[[str], bool]] = {
    "what they must do": lambda out: "Action needed" in out,
    "claim nothing": lambda out: "improves the overall experience" not in out,
}

_CHANGE = re.compile(r"^\s*-\s*(?P<kind>[A-Za-z]+)!?:\s*(?P<text>.*?)\s*(?:\(#(?P<pr>\d+)\))?\s*$")
_INTERNAL = {"chore", "ci", "test", "refactor", "docs", "build"}
_FILLER = " (this change improves the overall experience for users)"


@dataclass(frozen=True)
class Change:
    kind: str
    text: str
    pr: str


def _release(user: str) -> tuple[str, str, list[Change]]:
    project = re.search(r"`([^`\s]+)`", user)
    version = re.search(r"\b(\d+\.\d+\.\d+)\b", user)
    changes = [Change(m["kind"].lower(), m["text"], m["pr"] or "") for line in user.splitlines()
               if (m := _CHANGE.match(line))]
    return (project.group(1) if project else "the project"), (version.group(1) if version else "?"), changes


def _bullet(change: Change, rules: set[str]) -> str:
    text = change.text[:1].upper() + change.text[1:]
    if "pr_numbers" in rules and change.pr:
        text += f" (#{change.pr})"
    if change.kind == "breaking" and "migration" in rules:
        text += ". Action needed: check your code against this change before you upgrade."
    return f"- {text}{'' if 'concise' in rules else _FILLER}"


def _section(change: Change, rules: set[str]) -> str | None:
    """Its heading; None: left out."""
    if change.kind in _INTERNAL and "skip_internal" in rules:
        return None
    if change.kind == "breaking" and "breaking_first" in rules:
        return "Breaking changes"
    return {"feat": "Features", "perf": "Features", "fix": "Fixes"}.get(change.kind, "Other")


def _notes(project: str, version: str, changes: list[Change], rules: set[str]) -> str:
    lines = [] if "no_chatter" in rules else [f"Sure! Here are the release notes for {project} {version}.", ""]
    if "title" in rules:
        lines += [f"# {project} {version}", ""]
    sections: dict[str, list[str]] = {name: [] for name in ("Breaking changes", "Features", "Fixes", "Other")}
    for change in changes:
        if (heading := _section(change, rules)) is not None:
            sections[heading].append(_bullet(change, rules))
    for heading, bullets in sections.items():
        if bullets:
            lines += ([f"### {heading}"] if "grouped" in rules else []) + bullets + [""]
    if "no_chatter" not in rules:
        lines.append("Let me know if you would like any changes!")
    return "\n".join(lines).strip() + "\n"


def _json(version: str, changes: list[Change], rules: set[str]) -> str:
    if "json_only" not in rules:
        loose = {"version": version, "changes": [c.text for c in changes]}
        return f"Here is the JSON summary:\n```json\n{json.dumps(loose, indent=2)}\n```\n"
    kept = [c for c in changes if not (c.kind in _INTERNAL and "skip_internal" in rules)]
    body: dict[str, Any] = {"version": version, "breaking": any(c.kind == "breaking" for c in changes),
            "highlights": [c.text for c in kept if c.kind != "breaking"]}
    return json.dumps(body, indent=2) + "\n"


def answer(system: str, user: str) -> str:
    """What this model writes for a SKILL.md (`system`) and a case's prompt (`user`)."""
    rules = {name for name, pattern in RULES.items() if re.search(pattern, system.lower())}
    project, version, changes = _release(user)
    if "json" in user.lower():
        return _json(version, changes, rules)
    return _notes(project, version, changes, rules)


def _verdict(user: str) -> str:
    expectation = user.partition("\n")[0].removeprefix("Expectation: ")
    out = user.rpartition("The answer:\n<<<\n")[2].rpartition("\n>>>")[0]
    for key, holds in JUDGE.items():
        if key in expectation:
            return json.dumps({"passed": holds(out), "evidence": f"judged on {key!r}"})
    return "I cannot grade that."  # not the JSON asked for: the harness leaves it ungraded


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


@dataclass
class SkillModel:
    """The responder: the model under test for `model`, the judge for `judge_model`."""

    model: str = "skill-model"
    judge_model: str = "judge"
    seen: list[dict[str, Any]] = field(default_factory=list)  # (role, system, user) of each request

    def __call__(self, body: dict[str, Any]) -> Step:
        messages = body.get("messages", [])
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        user = next((m["content"] for m in messages if m["role"] == "user"), "")
        role = "judge" if body.get("model") == self.judge_model else "model"
        self.seen.append({"role": role, "system": system, "user": user})
        text = _verdict(user) if role == "judge" else answer(system, user)
        return Step(text, prompt_tokens=_tokens(system + user), completion_tokens=_tokens(text))


def skill_server() -> tuple[FakeLLM, SkillModel]:
    """A FakeLLM (not started: use it as a context manager) answering as SkillModel."""
    model = SkillModel()
    return FakeLLM([], responder=model), model
