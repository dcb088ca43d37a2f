"""Config loading: every shipped config loads; every mistake is one line naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm.core.config import StopSpec, SwarmConfig, load_config
from swarm.core.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))

NOT_A_MAPPING = "{path}: expected a mapping of keys (name, target, ...) at the top level"

VALID = """\
name: t
target:
  repo: r
  editable: [train.py]
  run: python train.py
  metric: {name: score}
  budget_s: 1
  timeout_s: 2
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


def test_configs_directory_is_not_empty() -> None:
    assert CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads(path: Path) -> None:
    assert isinstance(load_config(path), SwarmConfig)


def test_valid_config_gets_defaults(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, VALID))
    assert (config.target.metric.direction, config.target.readonly, config.stop) == (
        "minimize", [], StopSpec(max_trials=100, hours=None, target_metric=None))


# (how VALID is broken, the message after "<path>: ")
BAD_CONFIGS = {
    "unknown-top-level-key": (
        lambda v: v + "bogus: 1\n",
        "unknown key 'bogus'; allowed keys here: name, target, program, workers, proposer, "
        "acceptance, stop"),
    "unknown-nested-key": (
        lambda v: v + "  bogus: 1\n",
        "unknown key 'target.bogus'; allowed keys here: repo, editable, readonly, run, metric, "
        "budget_s, timeout_s, guard, max_log_bytes, env"),
    "unknown-doubly-nested-key": (
        lambda v: v.replace("{name: score}", "{name: score, bogus: 1}"),
        "unknown key 'target.metric.bogus'; allowed keys here: name, direction"),
    "unknown-key-in-optional-section": (
        lambda v: v + "stop: {bogus: 1}\n",
        "unknown key 'stop.bogus'; allowed keys here: max_trials, hours, target_metric, max_cost_usd"),
    "missing-required-key": (
        lambda v: v.replace("  run: python train.py\n", ""),
        "missing required key 'target.run'"),
    "wrong-type": (
        lambda v: v + "workers: {count: many}\n",
        "key 'workers.count': should be auto or a whole number >= 1 (got 'many')"),
    "wrong-literal": (
        lambda v: v.replace("{name: score}", "{name: score, direction: up}"),
        "key 'target.metric.direction': Input should be 'minimize' or 'maximize' (got 'up')"),
    "timeout-shorter-than-budget": (
        lambda v: v.replace("timeout_s: 2", "timeout_s: 0.5"),
        "key 'target': timeout_s (0.5) must be >= budget_s (1.0)"),
    "env-name-not-a-variable": (
        lambda v: v + "  env: {ML-DATA: x}\n",
        "key 'target.env': 'ML-DATA' is not an environment variable name (letters, digits, _)"),
    "env-overrides-what-the-worker-sets": (
        lambda v: v + "  env: {SWARM_BUDGET_S: '9'}\n",
        "key 'target.env': SWARM_BUDGET_S is set by the worker itself and cannot be overridden"),
    "api-key-in-the-yaml": (
        lambda v: v + "proposer: {kind: llm, model: openai/gpt-4o, api_key: sk-123}\n",
        "key 'proposer': API keys never go in the config: set ANTHROPIC_API_KEY or OPENAI_API_KEY "
        "(or the provider's usual variable) in the workers' environment"),
    "llm-without-model": (
        lambda v: v + "proposer: {kind: llm}\n",
        "key 'proposer': kind llm needs model (e.g. anthropic/claude-sonnet-4-5 or openai/gpt-4o)"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_a_bad_config_is_one_line_naming_the_file_and_the_key(tmp_path: Path, case: str) -> None:
    breaks, message = BAD_CONFIGS[case]
    path = _write(tmp_path, breaks(VALID))
    assert _error(path) == f"{path}: {message}"


def test_timeout_equal_to_budget_is_allowed(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, VALID.replace("timeout_s: 2", "timeout_s: 1")))
    assert config.target.timeout_s == 1.0


def test_yaml_list_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "- name\n- target\n")
    assert _error(path) == NOT_A_MAPPING.format(path=path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    assert _error(path) == NOT_A_MAPPING.format(path=path)


def test_invalid_yaml_names_file_on_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: [unclosed\n")
    message = _error(path)
    assert message.startswith(f"{path}: not valid YAML: while parsing a flow sequence")
    assert "\n" not in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert _error(path) == f"{path}: no such config file; see configs/ for examples"


def test_with_overrides_replaces_dotted_and_top_level_keys(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, VALID))
    changed = config.with_overrides({"stop.max_trials": 7, "name": "n2"})
    assert (changed.stop.max_trials, changed.name) == (7, "n2")


def test_with_overrides_ignores_none(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, VALID))
    assert config.with_overrides({"stop.max_trials": None, "workers.count": None}) == config


def test_with_overrides_leaves_the_original_alone(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, VALID))
    config.with_overrides({"stop.max_trials": 7})
    assert config.stop.max_trials == 100


def test_load_config_applies_overrides(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, VALID), {"workers.count": 8, "stop.hours": None})
    assert (config.workers.count, config.stop.hours) == (8, None)


@pytest.mark.parametrize(("override", "message"), [
    ({"stop.max_trials": 0},
     "key 'stop.max_trials': Input should be greater than or equal to 1 (got 0)"),
    ({"stop.bogus": 1},
     "unknown key 'stop.bogus'; allowed keys here: max_trials, hours, target_metric, max_cost_usd"),
    ({"bogus.x": 1},
     "unknown key 'bogus'; allowed keys here: name, target, program, workers, proposer, "
     "acceptance, stop"),
], ids=["invalid-value", "unknown-key", "unknown-section"])
def test_a_bad_override_is_one_line_naming_the_command_line(
        tmp_path: Path, override: dict, message: str) -> None:
    config = load_config(_write(tmp_path, VALID))
    with pytest.raises(ConfigError) as caught:
        config.with_overrides(override)
    assert str(caught.value) == f"<command line>: {message}"


def test_with_overrides_reaches_three_levels(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, VALID))
    changed = config.with_overrides({"target.metric.direction": "maximize"})
    assert changed.target.metric.direction == "maximize"


def test_directory_instead_of_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(tmp_path)
