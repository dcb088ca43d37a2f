"""The skill example's fixed harness: a SKILL.md scored by yes/no expectations over test cases.

The test cases are in Anthropic skill-creator's format (`evals/evals.json`: `{"skill_name",
"evals": [{"id", "prompt", "expected_output", "files", "expectations"}]}`). Three commands:

  python harness.py seal       `target.run`: copies SKILL.md into $SWARM_ARTIFACTS, nothing else
  python harness.py score      `target.score`: runs the sealed SKILL.md on every case and prints
                               the result block (pass_rate, pass_rate_heldout, seconds, tokens)
  python harness.py benchmark  by hand: with and without the skill, written to benchmark.json

The candidate is text, never code: `seal` only copies it, and `score` runs in a jail of its own
that holds the readonly files, the held-out cases (`heldout/evals.json`, `target.hidden`) and the
sealed copy. Nothing the candidate could print reaches the result block.

An expectation is a check when it starts with one of these words and a colon, else a statement
in plain English that a judge model grades (SKILL_JUDGE_MODEL; without one it is left ungraded
and out of the pass rates):
  contains: X        X is in the answer (case-sensitive; spaces around X are not part of it)
  not_contains: X    X is not in the answer
  regex: R           Python regular expression R matches somewhere (^ and $ match at each line)
  not_regex: R       R matches nowhere
  max_words: N       at most N words (split on white space); min_words: N at least N
  max_chars: N       at most N characters
  json_schema: S     the whole answer (stripped) is one JSON document valid under schema S

The model under test (litellm, any provider): SKILL_MODEL, SKILL_API_BASE, SKILL_API_KEY; the
judge: SKILL_JUDGE_MODEL, SKILL_JUDGE_API_BASE and SKILL_JUDGE_API_KEY (default: the model's).
SKILL_REPEATS (3) runs per case, SKILL_CONCURRENCY (4) calls at once, SKILL_MAX_TOKENS (1024),
SKILL_TEMPERATURE (the provider's default), SKILL_TIMEOUT_S (120) and SKILL_RETRIES (2) a call.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VISIBLE = HERE / "evals" / "evals.json"
HELDOUT = HERE / "heldout" / "evals.json"
MAX_SKILL_BYTES = 100_000  # a SKILL.md larger than this is refused: it is a prompt, not a corpus
FEEDBACK_EXCERPT = 300  # characters of an answer shown in the feedback
FEEDBACK_MAX = 7000  # the whole feedback's characters: the swarm keeps 8 KiB of it for the proposer

JUDGE_SYSTEM = (
    "You grade one answer against one expectation. Reply with only a JSON object: "
    '{"passed": true or false, "evidence": "<a short quote from the answer, or why it fails>"}. '
    "Pass only when the answer clearly meets the expectation.")


class HarnessError(Exception):
    """A problem that leaves no metric: the harness prints it and exits 1."""


# --- the cases and their checks ---------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """One expectation: `kind` is a check's name, or "judge" for a statement in plain English."""

    text: str
    kind: str
    arg: Any = None


@dataclass(frozen=True)
class Case:
    id: int | str
    prompt: str  # with the contents of its `files` appended
    expected_output: str
    checks: tuple[Check, ...]
    heldout: bool


@dataclass(frozen=True)
class Grade:
    text: str
    passed: bool | None  # None: ungraded (a statement with no judge to grade it)
    evidence: str


def parse_expectation(text: str) -> Check:
    """The check an expectation names, or a judge's statement; a malformed check is an error of
    the evals file, not a failed case."""
    name, sep, arg = text.partition(":")
    kind, arg = name.strip().lower(), arg.strip()
    if not sep or kind not in DETERMINISTIC:
        return Check(text, "judge")
    try:
        if kind in ("regex", "not_regex"):
            return Check(text, kind, re.compile(arg, re.MULTILINE))
        if kind in ("max_words", "min_words", "max_chars"):
            return Check(text, kind, int(arg))
        if kind == "json_schema":
            schema = json.loads(arg)
            _jsonschema().validators.validator_for(schema).check_schema(schema)
            return Check(text, kind, schema)
    except (re.error, ValueError, _jsonschema().SchemaError) as exc:
        raise HarnessError(f"expectation {text!r} is not a valid {kind} check: {exc}") from None
    return Check(text, kind, arg)


def load_cases(path: Path, heldout: bool) -> tuple[str, list[Case]]:
    """The skill's name and the cases of one evals.json; `files` are relative to the skill's
    folder, as in skill-creator, and their text is appended to the prompt."""
    try:
        data = json.loads(path.read_text())
        cases = []
        for item in data["evals"]:
            prompt = item["prompt"] + "".join(
                f"\n\n--- {name} ---\n{(HERE / name).read_text()}" for name in item.get("files", []))
            checks = tuple(parse_expectation(e) for e in item["expectations"])
            cases.append(Case(item["id"], prompt, item.get("expected_output", ""), checks, heldout))
        return str(data.get("skill_name", "")), cases
    except HarnessError:
        if heldout:  # the check's text would tell the proposer what a held-out case asks
            raise HarnessError(f"{path.relative_to(HERE)} has an expectation that is not a valid check") from None
        raise
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
        # the held-out file's name only: its content must not reach a log the proposer may read
        raise HarnessError(f"{path.relative_to(HERE)} cannot be read as skill-creator's evals.json "
                           f"({exc.__class__.__name__})") from None


@cache
def _jsonschema() -> Any:
    import jsonschema  # type: ignore[import-untyped]  # litellm depends on it, so it is wherever litellm is

    return jsonschema


def _contains(arg: str, out: str) -> tuple[bool, str]:
    return arg in out, f"{arg!r} is {'' if arg in out else 'not '}in the answer"


def _regex(pattern: re.Pattern[str], out: str) -> tuple[bool, str]:
    found = pattern.search(out)
    return found is not None, (f"matches {found.group(0)[:80]!r}" if found else "no match")


def _words(out: str) -> int:
    return len(out.split())


def _json_schema(schema: dict[str, Any], out: str) -> tuple[bool, str]:
    try:
        document = json.loads(out.strip())
    except json.JSONDecodeError as exc:
        return False, f"the answer is not one JSON document ({exc.msg} at line {exc.lineno})"
    error = _jsonschema().validators.validator_for(schema)(schema).iter_errors(document)
    first = next(iter(sorted(error, key=lambda e: list(e.path))), None)
    return first is None, "valid" if first is None else f"schema: {first.message[:200]}"


def _negate(check: Callable[[Any, str], tuple[bool, str]]) -> Callable[[Any, str], tuple[bool, str]]:
    def negated(arg: Any, out: str) -> tuple[bool, str]:
        passed, evidence = check(arg, out)
        return not passed, evidence

    return negated


DETERMINISTIC: dict[str, Callable[[Any, str], tuple[bool, str]]] = {
    "contains": _contains,
    "not_contains": _negate(_contains),
    "regex": _regex,
    "not_regex": _negate(_regex),
    "max_words": lambda n, out: (_words(out) <= n, f"{_words(out)} words (at most {n})"),
    "min_words": lambda n, out: (_words(out) >= n, f"{_words(out)} words (at least {n})"),
    "max_chars": lambda n, out: (len(out) <= n, f"{len(out)} characters (at most {n})"),
    "json_schema": _json_schema,
}


# --- the model and the judge ------------------------------------------------------------------

@dataclass(frozen=True)
class Endpoint:
    model: str
    api_base: str
    api_key: str


@dataclass(frozen=True)
class Settings:
    model: Endpoint
    judge: Endpoint | None
    repeats: int
    concurrency: int
    max_tokens: int
    temperature: float | None
    timeout_s: float
    retries: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        def number(name: str, default: str, kind: type[int] | type[float] = int, zero: bool = False) -> Any:
            text = env.get(name) or default
            try:
                value = kind(text)
            except ValueError:
                raise HarnessError(f"{name}={text!r} is not a number") from None
            if value < 0 or (value == 0 and not zero):
                raise HarnessError(f"{name}={text!r} must be {'at least' if zero else 'above'} 0")
            return value

        model = env.get("SKILL_MODEL", "")
        if not model:
            raise HarnessError("SKILL_MODEL is not set: name the model under test as litellm does, e.g. "
                               "openai/<name> with SKILL_API_BASE, or anthropic/claude-haiku-4-5")
        base, key = env.get("SKILL_API_BASE", ""), env.get("SKILL_API_KEY", "")
        judge = env.get("SKILL_JUDGE_MODEL", "")
        temperature = env.get("SKILL_TEMPERATURE", "")
        return cls(
            model=Endpoint(model, base, key),
            judge=Endpoint(judge, env.get("SKILL_JUDGE_API_BASE") or base,
                           env.get("SKILL_JUDGE_API_KEY") or key) if judge else None,
            repeats=number("SKILL_REPEATS", "3"), concurrency=number("SKILL_CONCURRENCY", "4"),
            max_tokens=number("SKILL_MAX_TOKENS", "1024"),
            temperature=number("SKILL_TEMPERATURE", "1", float, zero=True) if temperature else None,
            timeout_s=number("SKILL_TIMEOUT_S", "120", float), retries=number("SKILL_RETRIES", "2", zero=True))


@dataclass(frozen=True)
class Reply:
    text: str
    seconds: float
    tokens: int


@cache
def _litellm() -> Any:
    # litellm's price table from its own copy: importing it reaches no network (the jail has none
    # but the model's endpoint). Imported only when a model is called: `seal` stays instant.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


def complete(settings: Settings, endpoint: Endpoint, system: str, user: str,
             temperature: float | None) -> Reply:
    """One chat completion; an empty system prompt sends none (the `without_skill` run)."""
    messages = ([{"role": "system", "content": system}] if system.strip() else []) + [
        {"role": "user", "content": user}]
    extra: dict[str, Any] = {"api_base": endpoint.api_base} if endpoint.api_base else {}
    # a local OpenAI-compatible server wants some key; a hosted provider gets SKILL_API_KEY
    if endpoint.api_key or endpoint.api_base:
        extra["api_key"] = endpoint.api_key or "none"
    if temperature is not None:
        extra["temperature"] = temperature
    # Retried here rather than by litellm's num_retries, which needs tenacity (not a dependency).
    for tries_left in range(settings.retries, -1, -1):
        started = time.perf_counter()
        try:
            response = _litellm().completion(model=endpoint.model, messages=messages,
                                             max_tokens=settings.max_tokens, timeout=settings.timeout_s, **extra)
            break
        except Exception as exc:  # noqa: BLE001  (every provider error means the same: no metric)
            if tries_left:
                time.sleep(0.5 * 2 ** (settings.retries - tries_left))
                continue
            raise HarnessError(f"the call to {endpoint.model} failed: {exc.__class__.__name__}: "
                               f"{' '.join(str(exc).split())[:300]} (in a trial, the endpoint's host:port must "
                               "be in sandbox.network)") from None
    seconds = time.perf_counter() - started
    usage = getattr(response, "usage", None)
    return Reply(response.choices[0].message.content or "", seconds, int(getattr(usage, "total_tokens", 0) or 0))


def judge(settings: Settings, check: Check, case: Case, answer: str) -> Grade:
    """A statement graded by the judge model; none set, or a reply it cannot read: ungraded."""
    if settings.judge is None:
        return Grade(check.text, None, "ungraded: no judge (SKILL_JUDGE_MODEL is not set)")
    user = (f"Expectation: {check.text}\n\nThe task the answer was given:\n<<<\n{case.prompt}\n>>>\n\n"
            f"The answer:\n<<<\n{answer}\n>>>")
    reply = complete(settings, settings.judge, JUDGE_SYSTEM, user, 0.0).text
    found = re.search(r"\{.*\}", reply, re.DOTALL)
    try:
        verdict = json.loads(found.group(0)) if found else {}
    except json.JSONDecodeError:
        verdict = {}
    if not isinstance(verdict, dict) or not isinstance(verdict.get("passed"), bool):
        return Grade(check.text, None, f"ungraded: the judge's reply is not the JSON asked for: {reply[:120]!r}")
    return Grade(check.text, verdict["passed"], f"judge: {str(verdict.get('evidence', ''))[:200]}")


def grade(settings: Settings, check: Check, case: Case, answer: str) -> Grade:
    if check.kind == "judge":
        return judge(settings, check, case, answer)
    passed, evidence = DETERMINISTIC[check.kind](check.arg, answer)
    return Grade(check.text, passed, evidence)


# --- running the cases ------------------------------------------------------------------------

@dataclass(frozen=True)
class Attempt:
    """One run of one case: the answer, the model call's time and tokens, each expectation's grade."""

    case: Case
    repeat: int
    answer: str
    seconds: float
    tokens: int
    grades: tuple[Grade, ...]

    @property
    def passed(self) -> int:
        return sum(g.passed is True for g in self.grades)

    @property
    def graded(self) -> int:
        return sum(g.passed is not None for g in self.grades)


def attempt(settings: Settings, skill: str, case: Case, repeat: int) -> Attempt:
    reply = complete(settings, settings.model, skill, case.prompt, settings.temperature)
    grades = tuple(grade(settings, check, case, reply.text) for check in case.checks)
    return Attempt(case, repeat, reply.text, reply.seconds, reply.tokens, grades)


def warm_up(settings: Settings) -> None:
    """litellm imports most of itself on its first call, for seconds: done here, with a mock
    response (no request), so that no case's time includes it."""
    for endpoint in (settings.model, settings.judge):
        if endpoint is not None:
            _litellm().completion(model=endpoint.model, messages=[{"role": "user", "content": "hi"}],
                                  mock_response="ok", api_key="none")


def run_cases(settings: Settings, skill: str, cases: Sequence[Case]) -> list[Attempt]:
    """Every case `repeats` times, `concurrency` calls at once; in case order, then repeat order."""
    warm_up(settings)
    jobs = [(case, r) for case in cases for r in range(1, settings.repeats + 1)]
    if not jobs:
        return []
    # The first call alone: litellm finishes importing its provider code on it, and threads
    # racing through that import fail (seen under load: "Pydantic models should inherit from
    # BaseModel").
    first = attempt(settings, skill, *jobs[0])
    with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
        return [first, *pool.map(lambda job: attempt(settings, skill, *job), jobs[1:])]


@dataclass(frozen=True)
class Summary:
    pass_rate: float | None  # None: nothing graded
    passed: int
    graded: int
    ungraded: int
    seconds: float
    tokens: float


def summarize(attempts: Sequence[Attempt]) -> Summary:
    passed, graded = sum(a.passed for a in attempts), sum(a.graded for a in attempts)
    ungraded = sum(len(a.grades) - a.graded for a in attempts)
    return Summary(passed / graded if graded else None, passed, graded, ungraded,
                   statistics.fmean(a.seconds for a in attempts) if attempts else 0.0,
                   statistics.fmean(a.tokens for a in attempts) if attempts else 0.0)


# --- the three commands -----------------------------------------------------------------------

def seal() -> int:
    """`target.run`: the candidate's only contribution, SKILL.md, copied into the artifacts."""
    source = HERE / "SKILL.md"
    if source.is_symlink() or not source.is_file():
        raise HarnessError("SKILL.md is not a regular file")
    if source.stat().st_size > MAX_SKILL_BYTES:
        raise HarnessError(f"SKILL.md has {source.stat().st_size} bytes, over the {MAX_SKILL_BYTES} allowed")
    artifacts = os.environ.get("SWARM_ARTIFACTS")
    if not artifacts:
        raise HarnessError("SWARM_ARTIFACTS is not set: the swarm runs `seal` as target.run")
    shutil.copyfile(source, Path(artifacts) / "SKILL.md")
    print(f"sealed SKILL.md ({source.stat().st_size} bytes) for the score phase")
    return 0


def read_skill(path: Path) -> str:
    if path.is_symlink() or not path.is_file():
        raise HarnessError(f"no regular file {path} (the run phase seals SKILL.md there)")
    if path.stat().st_size > MAX_SKILL_BYTES:
        raise HarnessError(f"{path} has over {MAX_SKILL_BYTES} bytes")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise HarnessError(f"{path} is not UTF-8 text") from None


def default_skill() -> Path:
    artifacts = os.environ.get("SWARM_ARTIFACTS")
    return Path(artifacts) / "SKILL.md" if artifacts else HERE / "SKILL.md"


def score(skill_path: Path) -> int:
    """`target.score`: the result block. Only visible cases are named in what it prints or writes
    to the feedback; of the held-out ones, only their pass rate."""
    settings = Settings.from_env()
    skill = read_skill(skill_path)
    _, visible = load_cases(VISIBLE, heldout=False)
    heldout = load_cases(HELDOUT, heldout=True)[1] if HELDOUT.is_file() else []
    attempts = run_cases(settings, skill, [*visible, *heldout])
    seen = [a for a in attempts if not a.case.heldout]
    shown, hidden = summarize(seen), summarize([a for a in attempts if a.case.heldout])
    if shown.pass_rate is None:
        raise HarnessError("no expectation of a visible case was graded: set SKILL_JUDGE_MODEL, or add "
                           "checks (contains:, regex:, ...) to evals/evals.json")
    print_cases(seen, settings.repeats)
    if shown.ungraded or hidden.ungraded:
        print(f"note: {shown.ungraded + hidden.ungraded} gradings of plain-English expectations were left "
              "ungraded (no judge: set SKILL_JUDGE_MODEL); the pass rates leave them out")
    print(f"held-out cases: {len(heldout)} (only their pass rate is shown)" if heldout else
          "held-out cases: none (heldout/evals.json is not here; target.hidden shows it to score only)")
    write_feedback(seen, shown)
    print_block(shown, hidden if heldout else None, seen, settings.repeats)
    return 0


def per_case(attempts: Sequence[Attempt]) -> dict[int | str, list[Attempt]]:
    grouped: dict[int | str, list[Attempt]] = {}
    for a in attempts:
        grouped.setdefault(a.case.id, []).append(a)
    return grouped


def print_cases(attempts: Sequence[Attempt], repeats: int) -> None:
    for case_id, runs in per_case(attempts).items():
        s = summarize(runs)
        print(f"case {case_id}: {s.passed} of {s.graded} graded expectations passed over {repeats} "
              f"repeat(s); {s.seconds:.2f} s, {s.tokens:.0f} tokens a run")


def print_block(shown: Summary, hidden: Summary | None, seen: Sequence[Attempt], repeats: int) -> None:
    lines = ["---", f"pass_rate: {shown.pass_rate:.6f}"]
    if hidden is not None and hidden.pass_rate is not None:
        lines.append(f"pass_rate_heldout: {hidden.pass_rate:.6f}")
    lines += [f"seconds: {shown.seconds:.6f}", f"tokens: {shown.tokens:.1f}",
              f"passed: {shown.passed}", f"graded: {shown.graded}", f"ungraded: {shown.ungraded}",
              f"cases: {len(per_case(seen))}", f"repeats: {repeats}"]
    lines += [f"case.{case_id}: {summarize(runs).pass_rate or 0.0:.6f}" for case_id, runs in per_case(seen).items()]
    print("\n".join(lines))


def feedback_text(seen: Sequence[Attempt], shown: Summary) -> str:
    """What failed among the visible cases, and why: the expectation, the check's evidence and
    an excerpt of the answer. Held-out cases never appear here."""
    lines = [f"pass_rate {shown.pass_rate:.3f}: {shown.passed} of {shown.graded} graded expectations passed "
             f"over the visible cases and their repeats."]
    for case_id, runs in per_case(seen).items():
        failing = [(g, a) for a in runs for g in a.grades if g.passed is False]
        if not failing:
            continue
        texts = list(dict.fromkeys(g.text for g, _ in failing))
        lines.append(f"\nCase {case_id}: {len(texts)} of {len(runs[0].grades)} expectations failed, over "
                     f"{len(runs)} run(s). Prompt: {runs[0].case.prompt[:200]!r}")
        for text in texts:
            times = sum(g.text == text for g, _ in failing)
            evidence = next(g.evidence for g, _ in failing if g.text == text)
            lines.append(f"  - FAILED {times}/{len(runs)}: {text!r}: {evidence}")
        answer = failing[0][1].answer
        lines.append(f"  answer (run {failing[0][1].repeat}, first {FEEDBACK_EXCERPT} characters):")
        lines += [f"    | {line}" for line in answer[:FEEDBACK_EXCERPT].splitlines()]
    text = "\n".join(lines) + "\n"
    return text if len(text) <= FEEDBACK_MAX else text[:FEEDBACK_MAX] + "\n[... the rest cut]\n"


def write_feedback(seen: Sequence[Attempt], shown: Summary) -> None:
    target = os.environ.get("SWARM_FEEDBACK_FILE")
    if not target:
        return
    try:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(feedback_text(seen, shown))
    except OSError as exc:  # feedback helps the proposer; its loss must not cost the metric
        print(f"warning: could not write the feedback to {target}: {exc}")


def stats(values: Sequence[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "stddev": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def benchmark(skill_path: Path, out: Path, with_heldout: bool) -> int:
    """skill-creator's benchmark.json: each case `repeats` times with the skill and without it
    (no system prompt), each run's grades, and mean/stddev/min/max of pass rate, time and tokens."""
    settings = Settings.from_env()
    skill_name, cases = load_cases(VISIBLE, heldout=False)
    if with_heldout and HELDOUT.is_file():
        cases += load_cases(HELDOUT, heldout=True)[1]
    configurations = {"with_skill": read_skill(skill_path), "without_skill": ""}
    runs: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    for name, system in configurations.items():
        attempts = [a for a in run_cases(settings, system, cases) if a.graded]
        if not attempts:
            raise HarnessError("no expectation was graded: set SKILL_JUDGE_MODEL, or add checks")
        runs += [run_record(name, a) for a in attempts]
        summary[name] = {"pass_rate": stats([a.passed / a.graded for a in attempts]),
                         "time_seconds": stats([a.seconds for a in attempts]),
                         "tokens": stats([float(a.tokens) for a in attempts])}
    summary["delta"] = delta(summary["with_skill"], summary["without_skill"])
    document = {
        "metadata": {"skill_name": skill_name, "skill_path": str(skill_path), "executor_model": settings.model.model,
                     "grader_model": settings.judge.model if settings.judge else None,
                     "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                     "evals_run": [c.id for c in cases], "runs_per_configuration": settings.repeats},
        "runs": runs, "run_summary": summary, "notes": notes(runs)}
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {out}: pass rate {summary['with_skill']['pass_rate']['mean']:.3f} with the skill, "
          f"{summary['without_skill']['pass_rate']['mean']:.3f} without ({summary['delta']['pass_rate']})")
    return 0


def run_record(configuration: str, a: Attempt) -> dict[str, Any]:
    return {"eval_id": a.case.id, "eval_name": f"eval-{a.case.id}", "heldout": a.case.heldout,
            "configuration": configuration, "run_number": a.repeat,
            "result": {"pass_rate": a.passed / a.graded, "passed": a.passed, "failed": a.graded - a.passed,
                       "total": a.graded, "time_seconds": a.seconds, "tokens": a.tokens,
                       "tool_calls": 0, "errors": 0},
            "expectations": [{"text": g.text, "passed": g.passed, "evidence": g.evidence} for g in a.grades],
            "output_excerpt": a.answer[:FEEDBACK_EXCERPT], "notes": []}


def delta(with_skill: dict[str, Any], without: dict[str, Any]) -> dict[str, str]:
    def gap(key: str) -> float:
        return float(with_skill[key]["mean"] - without[key]["mean"])

    return {"pass_rate": f"{gap('pass_rate'):+.2f}", "time_seconds": f"{gap('time_seconds'):+.1f}",
            "tokens": f"{round(gap('tokens')):+d}"}


def notes(runs: Sequence[dict[str, Any]]) -> list[str]:
    """skill-creator's analyser hints that need no model: expectations that pass everywhere
    (they do not tell the skill from its absence) and those never graded."""
    outcomes: dict[str, set[bool | None]] = {}
    for run in runs:
        for e in run["expectations"]:
            outcomes.setdefault(e["text"], set()).add(e["passed"])
    found = [f"passes in every run with and without the skill, so it may not differentiate: {text!r}"
             for text, seen in outcomes.items() if seen == {True}]
    found += [f"never graded (no judge): {text!r}" for text, seen in outcomes.items() if seen == {None}]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("seal", help="target.run: copy SKILL.md into $SWARM_ARTIFACTS")
    scoring = commands.add_parser("score", help="target.score: print the result block")
    scoring.add_argument("--skill", type=Path, default=None, help="default: $SWARM_ARTIFACTS/SKILL.md, else ./SKILL.md")
    bench = commands.add_parser("benchmark", help="write benchmark.json: with and without the skill")
    bench.add_argument("--skill", type=Path, default=HERE / "SKILL.md")
    bench.add_argument("--out", type=Path, default=Path("benchmark.json"))
    bench.add_argument("--heldout", action="store_true", help="run the held-out cases too")
    args = parser.parse_args(argv)
    try:
        if args.command == "seal":
            return seal()
        if args.command == "score":
            return score(args.skill or default_skill())
        return benchmark(args.skill, args.out, args.heldout)
    except HarnessError as exc:
        print(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
