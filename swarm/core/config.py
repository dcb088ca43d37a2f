"""The run config: one YAML per target and scale, validated with unknown keys refused.

Precedence is one rule: command-line overrides > YAML > model defaults.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from swarm.core.config_problems import describe_errors
from swarm.core.errors import ConfigError
from swarm.core.overrides import parse_settings, put_dotted

__all__ = [
    "MetricSpec", "TieBreakSpec", "NeedSpec", "TargetSpec", "LimitsSpec", "SandboxSpec",
    "WorkersSpec", "ProposerSpec", "AcceptanceSpec",
    "StopSpec", "TrackingSpec", "SwarmConfig", "load_config",
]


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED_ENV = frozenset({"HOME", "PATH", "PYTHONUNBUFFERED"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricSpec(_Strict):
    name: str = Field(min_length=1, description="key in the experiment's '---' block")
    direction: Literal["minimize", "maximize"] = "minimize"
    heldout: str | None = Field(
        default=None, description="key of the same measure on cases the proposer never sees: recorded "
                                  "and reported (does it generalise), never in a prompt or feedback")


class TieBreakSpec(_Strict):
    name: str = Field(min_length=1, description="key in the experiment's '---' block")
    direction: Literal["minimize", "maximize"] = "minimize"
    min_delta: float = Field(default=0.0, ge=0, description="the smallest gain of it worth keeping, "
                                                            "and how much worse still counts as a tie")


class NeedSpec(_Strict):
    path: str = Field(min_length=1, description="a file, directory or glob the run reads; relative: in "
                                                "the checkout; ~, $VAR and target.env's variables expand")
    hint: str = Field(default="", description="how to make it, e.g. run ml_target/prepare.py")


class TargetSpec(_Strict):
    repo: str = Field(description="a directory (copied into the run's repo) or a git URL")
    editable: list[str] = Field(min_length=1, description="globs agents may change")
    readonly: list[str] = Field(default_factory=list, description="globs hash-checked before every trial")
    run: str = Field(min_length=1, description="shell command of one experiment, run in the checkout")
    metric: MetricSpec
    tiebreak: list[TieBreakSpec] = Field(
        default_factory=list, description="metrics that decide, in order, between candidates tied on "
                                          "the metric (not worse by more than its margin)")
    budget_s: float = Field(gt=0, description="the experiment's own budget, given as SWARM_BUDGET_S")
    timeout_s: float = Field(gt=0, description="hard kill of the experiment's whole process group")
    guard: str | None = Field(default=None, description="command that must exit 0 for a trial to count")
    score: str | None = Field(
        default=None, description="trusted command (of the readonly files) run after `run` in its own "
                                  "jail, reading what run left in $SWARM_ARTIFACTS and the hidden files; "
                                  "when set, the metric comes only from its result block")
    hidden: list[str] = Field(
        default_factory=list, description="files the experiment must not read (held-out data), shown to "
                                          "score only: globs in the checkout, or absolute paths on each "
                                          "worker's machine (~, $VAR and target.env's variables expand)")
    max_log_bytes: int = Field(default=2_000_000, gt=1000)
    env: dict[str, str] = Field(
        default_factory=dict,
        description="extra environment of the experiment; ~ and $VAR expand on each worker's machine")
    needs: list[NeedSpec] = Field(
        default_factory=list, description="data the run needs on each worker's machine: checked by "
                                          "`swarm check`, at `swarm run` and before every trial")

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an environment variable name (letters, digits, _)")
            if name in _RESERVED_ENV or name.startswith("SWARM_"):
                raise ValueError(f"{name} is set by the worker itself and cannot be overridden")
        return env

    def other_metrics(self) -> tuple[str, ...]:
        """The metrics besides the one that decides, in the config's order: the tie-breakers,
        then the held-out one."""
        return (*(t.name for t in self.tiebreak), *([self.metric.heldout] if self.metric.heldout else []))

    @model_validator(mode="after")
    def _metrics_distinct(self) -> TargetSpec:
        names = [self.metric.name, *(t.name for t in self.tiebreak)]
        if self.metric.heldout is not None:
            names.append(self.metric.heldout)
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"metric {name!r} is named twice among metric, metric.heldout and "
                                 "tiebreak: each must be a different key of the result block")
        return self

    @model_validator(mode="after")
    def _timeout_covers_budget(self) -> TargetSpec:
        if self.timeout_s < self.budget_s:
            raise ValueError(f"timeout_s ({self.timeout_s}) must be >= budget_s ({self.budget_s})")
        return self


_ENDPOINT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):([0-9]{1,5})$")


class LimitsSpec(_Strict):
    memory_mb: int | None = Field(default=None, gt=0, description="resident memory of one trial's processes "
                                                                  "together; default: 3/4 of the node's")
    processes: int = Field(default=1024, ge=8, description="processes one trial may have at once")
    cpu_s: int | None = Field(default=None, gt=0, description="CPU seconds any one process may use")
    file_mb: int | None = Field(default=4096, gt=0, description="the largest file a trial may write")
    scratch_mb: int = Field(default=4096, ge=16, description="the trial's /tmp, in memory: its copy of the "
                                                            "checkout, HOME and artifacts")


class SandboxSpec(_Strict):
    isolation: Literal["namespaces", "none"] = Field(
        default="namespaces", description="namespaces: every command of a trial in the jail (a worker "
                                          "that cannot make one refuses trials); none: no jail at all")
    network: list[str] = Field(default_factory=list, description="host:port endpoints a trial may reach "
                                                                 "(nothing else); e.g. api.anthropic.com:443")
    read: list[str] = Field(default_factory=list, description="host paths a trial may read, outside its "
                                                              "checkout (data); ~ and $VAR expand")
    limits: LimitsSpec = LimitsSpec()

    @field_validator("network")
    @classmethod
    def _endpoints(cls, network: list[str]) -> list[str]:
        for text in network:
            match = _ENDPOINT.fullmatch(text)
            if not match or not 0 < int(match.group(2)) < 65536:
                raise ValueError(f"{text!r} is not host:port (e.g. api.anthropic.com:443 or 127.0.0.1:8000)")
        return network


class WorkersSpec(_Strict):
    count: int | Literal["auto"] = Field(
        default=2, description="workers to run, or auto: one per slot (gpus/cpus per worker) of "
                               "the cluster, growing as nodes join")
    gpus_per_worker: float = Field(default=0, ge=0, description="1, or 0.5 / 0.25 to share a GPU")
    cpus_per_worker: float = Field(default=1, ge=0)
    max_workers: int | None = Field(default=None, ge=1, description="cap on workers, auto or not")
    prepare_ahead: bool = Field(
        default=True, description="prepare the next proposal while a trial runs; false: propose, then "
                                  "evaluate, as autoresearch's single loop does")

    @field_validator("count", mode="before")
    @classmethod
    def _auto_or_positive(cls, count: Any) -> int | str:
        if count == "auto" or (isinstance(count, int) and not isinstance(count, bool) and count >= 1):
            return "auto" if count == "auto" else int(count)
        raise ValueError(f"should be auto or a whole number >= 1 (got {count!r})")

    @model_validator(mode="after")
    def _some_resource(self) -> WorkersSpec:
        if self.gpus_per_worker == 0 and self.cpus_per_worker == 0:
            raise ValueError("gpus_per_worker and cpus_per_worker cannot both be 0: a worker "
                             "must occupy something, or any number would fit on one node")
        if self.gpus_per_worker > 1 and not float(self.gpus_per_worker).is_integer():
            raise ValueError(f"gpus_per_worker {self.gpus_per_worker} must be a fraction <= 1 or a "
                             "whole number (Ray shares a GPU, it does not split two)")
        return self

    def initial_count(self) -> int | None:
        """The fixed number of workers, capped; None when it follows the cluster (auto)."""
        if self.count == "auto":
            return None
        return min(self.count, self.max_workers or self.count)


class PriceSpec(_Strict):
    input_per_mtok: float = Field(ge=0, description="dollars per million prompt tokens")
    output_per_mtok: float = Field(ge=0, description="dollars per million completion tokens")


class ProposerSpec(_Strict):
    kind: Literal["mutate", "llm", "agent"] = "mutate"
    seed: int | None = Field(default=None, description="base seed; worker i uses seed + i")
    model: str | None = Field(default=None, description="litellm model name, e.g. anthropic/claude-...")
    api_base: str | None = Field(default=None, description="endpoint of a local or proxied server")
    temperature: float = Field(default=0.7, ge=0, le=2)
    max_tokens: int = Field(default=4096, gt=0, description="longest reply")
    timeout_s: float = Field(default=300, gt=0, description="one request's (or agent run's) time limit")
    max_retries: int = Field(default=6, ge=0, description="provider errors retried with backoff")
    retry_base_s: float = Field(default=2.0, gt=0,
                                description="the first backoff's ceiling (full jitter); doubles each retry")
    price: PriceSpec | None = Field(default=None, description="overrides litellm's price table")
    command: str | None = Field(default=None, description="kind agent: the coding agent CLI to run")
    context: list[str] = Field(
        default_factory=list, description="files every proposal is shown, e.g. an earlier run's "
                                          "CHANGELOG.md (relative: to the config's folder)")

    @model_validator(mode="before")
    @classmethod
    def _no_keys_in_yaml(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(str(k).lower().endswith(("key", "token", "secret")) for k in data):
            raise ValueError("API keys never go in the config: set ANTHROPIC_API_KEY or OPENAI_API_KEY "
                             "(or the provider's usual variable) in the workers' environment")
        return data

    @model_validator(mode="after")
    def _each_kind_has_what_it_needs(self) -> ProposerSpec:
        if self.kind == "llm" and not self.model:
            raise ValueError("kind llm needs model (e.g. anthropic/claude-sonnet-4-5 or openai/gpt-4o)")
        if self.kind == "agent" and not self.command:
            raise ValueError("kind agent needs command (e.g. \"claude -p\" or \"codex exec -\")")
        return self


class AcceptanceSpec(_Strict):
    min_delta: float = Field(default=0.0, ge=0, description="the smallest gain worth keeping")
    false_accept: float = Field(
        default=0.005, gt=0, le=0.5,
        description="the chance that a change which truly gains nothing is accepted, over all the looks "
                    "at it; 0.5 keeps any measured gain (autoresearch's keep-if-lower)")
    baseline_runs: int = Field(default=3, ge=1, description="fresh runs of every new best, per class")
    confirm_runs: int = Field(default=0, ge=0, description="re-runs a winner gets before it is "
                                                           "accepted, however clear its first run")
    max_runs: int = Field(default=4, ge=1, description="runs a candidate may get before it is "
                                                       "dropped undecided")
    noise_k: float | None = Field(
        default=None, ge=0, description="the point rule of older configs: accept a mean gain above "
                                        "noise_k pooled spreads, after confirm_runs re-runs")

    @model_validator(mode="before")
    @classmethod
    def _point_rule_defaults(cls, data: Any) -> Any:
        # An old config's noise_k keeps its old meaning, including one confirmation by default.
        if isinstance(data, dict) and data.get("noise_k") is not None and "confirm_runs" not in data:
            return {**data, "confirm_runs": 1}
        return data

    @model_validator(mode="after")
    def _one_rule(self) -> AcceptanceSpec:
        if self.max_runs <= self.confirm_runs:
            raise ValueError(f"max_runs ({self.max_runs}) must exceed confirm_runs ({self.confirm_runs}): "
                             "a winner's first run and its re-runs all count")
        return self


class StopSpec(_Strict):
    max_trials: int | None = Field(default=100, ge=1, description="evaluations of any kind, over all sessions")
    hours: float | None = Field(default=None, gt=0, description="wall-clock hours of this session")
    target_metric: float | None = Field(default=None, description="stop once best reaches it")
    max_cost_usd: float | None = Field(default=None, gt=0, description="proposers' spend, over all sessions")
    max_refusals: int | None = Field(
        default=None, ge=1, description="proposals refused (out of scope, duplicate) or failed in one "
                                        "session before the run stops; default: half of max_trials, "
                                        "at least 10")


class TrackingSpec(_Strict):
    kind: Literal["mlflow", "wandb"] | None = Field(
        default=None, description="where each evaluated trial is logged as a step: mlflow, wandb, or "
                                  "null (nothing); needs pip install 'autoresearch-swarm[KIND]'")
    uri: str | None = Field(
        default=None, description="mlflow: the tracking URI (http://..., sqlite:///..., a folder); "
                                  "default: sqlite:///RUN_DIR/mlflow.db")
    experiment: str | None = Field(default=None, description="the MLflow experiment or W&B project; "
                                                             "default: the config's name")
    mode: Literal["offline", "online"] = Field(
        default="offline", description="wandb: offline writes RUN_DIR/wandb/ (wandb sync it later); "
                                       "online needs WANDB_API_KEY")
    entity: str | None = Field(default=None, description="wandb: the team or user the project belongs to")


class SwarmConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    target: TargetSpec
    program: str = "program.md"
    workers: WorkersSpec = WorkersSpec()
    proposer: ProposerSpec = ProposerSpec()
    acceptance: AcceptanceSpec = AcceptanceSpec()
    stop: StopSpec = StopSpec()
    sandbox: SandboxSpec = SandboxSpec()
    tracking: TrackingSpec = TrackingSpec()

    def with_overrides(self, overrides: dict[str, Any]) -> SwarmConfig:
        """Returns a copy with dotted keys (e.g. 'stop.max_trials') replaced; None means unset."""
        given = {dotted: value for dotted, value in overrides.items() if value is not None}
        return _validate(self.model_dump(), "<command line>", {"<command line>": given})


def load_config(path: str | Path, overrides: dict[str, Any] | None = None,
                settings: Sequence[str] = ()) -> SwarmConfig:
    """Reads and validates one YAML config; every error names the file (or --set) and the key.
    `settings`: `--set section.key=value` items; `overrides`: the named flags' dotted keys
    (None: not given), applied after them."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file; {_where_configs_are()}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as a YAML config ({exc.__class__.__name__}); "
                          "give a file such as configs/quadratic.yaml") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys (name, target, ...) at the top level")
    flags = {dotted: value for dotted, value in (overrides or {}).items() if value is not None}
    given, malformed = parse_settings(settings, SwarmConfig)
    return _validate(data, str(path), {"--set": given, "<command line>": flags}, malformed)


def _where_configs_are() -> str:
    shipped = sorted(p.name for p in Path("configs").glob("*.yaml"))
    if shipped:
        return f"configs/ here holds {', '.join(shipped)}"
    return "write an example out with `swarm init --example quadratic` (`swarm init --list` names them)"


def _validate(data: dict[str, Any], source: str, layers: dict[str, dict[str, Any]],
              problems: list[str] | None = None) -> SwarmConfig:
    """Validates `data` with each layer of dotted keys put over it in turn (the later wins);
    every problem is reported at once, each blamed on the file or the layer its value came from."""
    blame: dict[str, str] = {}
    problems = list(problems or [])
    for label, given in layers.items():
        for dotted, value in given.items():
            try:
                made = put_dotted(data, dotted, value)
            except ConfigError as exc:
                problems.append(f"{label}: {exc}")
                continue
            blame.update({key: label for key in [dotted, *made]})
    try:
        config = SwarmConfig.model_validate(data)
    except ValidationError as exc:
        problems += describe_errors(exc.errors(), SwarmConfig, lambda loc: _source_of(loc, blame, source))
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def _source_of(loc: tuple[Any, ...], blame: dict[str, str], source: str) -> str:
    """Who gave the value at `loc`: the layer that set it or a section above it, else the file."""
    parts = [str(part) for part in loc]
    for depth in range(len(parts), 0, -1):
        label = blame.get(".".join(parts[:depth]))
        if label is not None:
            return label
    return source
