"""One trial's commands, run where the config says: `run`, then `guard`, then `score`, each in its
own jail (or all in the plain sandbox with `sandbox: {isolation: none}`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import psutil

from swarm.core.config import SwarmConfig
from swarm.core.envvars import expand
from swarm.core.preflight import run_environ
from swarm.core.scope import matching_paths
from workers.feedback import read_feedback
from workers.jail import JailLimits, JailPlan, JailReport, availability, hidden_from_host, python_paths, run_jailed
from workers.relay import Endpoint
from workers.sandbox import SandboxResult, run_sandboxed

__all__ = ["Phase", "TrialRun", "Evaluator", "jail_missing"]


@dataclass(frozen=True)
class Phase:
    """One command of a trial, as it ended."""

    result: SandboxResult
    report: JailReport | None  # None: it ran without the jail
    log: str
    feedback: str = ""  # what it wrote to SWARM_FEEDBACK_FILE, capped


@dataclass(frozen=True)
class TrialRun:
    run: Phase | None  # None: refused before running (no jail here)
    guard: Phase | None = None
    score: Phase | None = None
    refusal: str = ""
    scored: bool = False  # the target has a score phase (it may not have run: a guard failed)

    @property
    def isolated(self) -> bool | None:
        return None if self.run is None else self.run.report is not None

    def log(self) -> str:
        """Every phase's output, each after a line naming it (the score's is not the run's)."""
        later = (("guard", self.guard), ("score", self.score))
        parts = [p.log for p in (self.run,) if p] + [
            f"\n=== swarm: the {name} phase ===\n{p.log}" for name, p in later if p]
        return "".join(parts) or self.refusal + "\n"

    def feedback(self) -> str:
        """What the trial's commands said for the proposer: the trusted score's and guard's
        where score ran (run's is the candidate's own word), else run's and guard's; each
        after a line naming its phase when more than one wrote."""
        named = (("guard", self.guard), ("score", self.score)) if self.score else (
            ("run", self.run), ("guard", self.guard))
        wrote = [(name, p.feedback) for name, p in named if p and p.feedback.strip()]
        if len(wrote) == 1:
            return wrote[0][1]
        return "".join(f"[{name}]\n{text.rstrip()}\n" for name, text in wrote)


@cache
def jail_missing() -> str | None:
    """Why this machine cannot make the jail (asked once per process), None when it can."""
    return availability()


class Evaluator:
    """Runs a trial's commands for one worker: `root` is its clone's folder, `private` paths of
    the machine (the run directory, the target's source) the trial must not see."""

    def __init__(self, config: SwarmConfig, checkout: Path, root: Path, private: tuple[str, ...] = ()) -> None:
        self.config, self.checkout, self.root = config, checkout, root
        self.private = private

    def evaluate(self, trial_id: str, env: Mapping[str, str], files: list[str]) -> TrialRun:
        """`files`: the checkout's tracked files at the trial's commit."""
        target, sandbox = self.config.target, self.config.sandbox
        folder = self.root / "trials" / trial_id
        shutil.rmtree(folder, ignore_errors=True)
        jailed = sandbox.isolation == "namespaces"
        if jailed and (missing := jail_missing()):
            return TrialRun(None, refusal=f"this worker cannot make the trial jail ({missing}); fix that, or "
                                          "set sandbox: {isolation: none} to run trials without it")
        try:
            plans = self._plans(files, folder / "run" / "artifacts", env)
            scored = target.score is not None
            run = self._phase("run", target.run, plans, folder, env)
            if not _clean(run):
                return TrialRun(run, scored=scored)
            guard = self._phase("guard", target.guard, plans, folder, env) if target.guard else None
            if guard is not None and not _clean(guard):
                return TrialRun(run, guard, scored=scored)
            score = self._phase("score", target.score, plans, folder, env) if target.score else None
            return TrialRun(run, guard, score, scored=scored)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _phase(self, name: str, command: str, plans: dict[str, JailPlan], folder: Path,
               env: Mapping[str, str]) -> Phase:
        target = self.config.target
        log_path = folder / f"{name}.log"
        if self.config.sandbox.isolation == "none":
            artifacts, feedback = folder / "run" / "artifacts", folder / f"{name}.feedback"
            artifacts.mkdir(parents=True, exist_ok=True)
            result = run_sandboxed(command, cwd=self.checkout, log_path=log_path, timeout_s=target.timeout_s,
                                   env={**env, "SWARM_ARTIFACTS": str(artifacts), "SWARM_FEEDBACK_FILE": str(feedback)},
                                   max_log_bytes=target.max_log_bytes)
            report = None
        else:
            plan = replace(plans[name], command=command)
            result, report = run_jailed(plan, folder=folder / name, log_path=log_path, timeout_s=target.timeout_s,
                                        env=env, max_log_bytes=target.max_log_bytes)
            feedback = folder / name / "feedback.txt"  # PID 1 copied it out of the jail
        return Phase(result, report, log_path.read_text(errors="replace"), read_feedback(feedback))

    def _plans(self, files: list[str], artifacts: Path, env: Mapping[str, str]) -> dict[str, JailPlan]:
        """What each phase sees: run and guard the checkout but the hidden files; score only the
        readonly and hidden files, and what run left."""
        target, sandbox = self.config.target, self.config.sandbox
        environ = run_environ(self.config, {**os.environ, **env})
        hidden_here = [expand(p, environ) for p in target.hidden if os.path.isabs(expand(p, environ))]
        hidden_tree = matching_paths(files, [p for p in target.hidden if not os.path.isabs(expand(p, environ))])
        readonly = matching_paths(files, target.readonly)
        cover = hidden_from_host([str(self.root.parent), *self.private])
        exposed = (*python_paths(), *(expand(p, environ) for p in sandbox.read))
        limits = sandbox.limits
        shown = tuple(f for f in files if f not in set(hidden_tree))
        run = JailPlan(command="", checkout=self.checkout, copy=shown, readonly=tuple(readonly),
                       cover=(*cover, *hidden_here), expose=exposed, keep_artifacts=True,
                       network=tuple(Endpoint.parse(e) for e in sandbox.network),
                       limits=JailLimits(memory_mb=limits.memory_mb or _default_memory_mb(),
                                         processes=limits.processes, cpu_s=limits.cpu_s,
                                         file_mb=limits.file_mb, scratch_mb=limits.scratch_mb))
        return {
            "run": run,
            "guard": replace(run, keep_artifacts=False, artifacts_in=artifacts),
            "score": replace(run, copy=tuple(sorted({*readonly, *hidden_tree})), cover=cover,
                             expose=(*exposed, *hidden_here), keep_artifacts=False, artifacts_in=artifacts),
        }


def _clean(phase: Phase) -> bool:
    """Whether the next phase may run: it exited 0, in time, within its limits."""
    report = phase.report
    return (phase.result.exit_code == 0 and not phase.result.timed_out
            and not (report and (report.limit or report.setup_error)))


def _default_memory_mb() -> int:
    return int(psutil.virtual_memory().total * 3 / 4 / (1 << 20))

