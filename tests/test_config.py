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
        "acceptance, stop, sandbox, tracking"),
    "unknown-nested-key": (
        lambda v: v + "  bogus: 1\n",
        "unknown key 'target.bogus'; allowed keys here: repo, editable, readonly, run, metric, "
        "tiebreak, budget_s, timeout_s, guard, score, hidden, max_log_bytes, env, needs"),
    "unknown-doubly-nested-key": (
        lambda v: v.replace("{name: score}", "{name: score, bogus: 1}"),
        "unknown key 'target.metric.bogus'; allowed keys here: name, direction, heldout"),
    "unknown-key-in-optional-section": (
        lambda v: v + "stop: {bogus: 1}\n",
        "unknown key 'stop.bogus'; allowed keys here: max_trials, hours, target_metric, max_cost_usd, "
        "max_refusals"),
    "missing-required-key": (
        lambda v: v.replace("  run: python train.py\n", ""),
        "missing required key 'target.run' (shell command of one experiment, run in the checkout)"),
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
    "sandbox-endpoint-without-port": (
        lambda v: v + "sandbox: {network: [api.anthropic.com]}\n",
        "key 'sandbox.network': 'api.anthropic.com' is not host:port (e.g. api.anthropic.com:443 or "
        "127.0.0.1:8000)"),
    "sandbox-unknown-isolation": (
        lambda v: v + "sandbox: {isolation: docker}\n",
        "key 'sandbox.isolation': Input should be 'namespaces' or 'none' (got 'docker')"),
    "sandbox-unknown-limit": (
        lambda v: v + "sandbox: {limits: {gpu_mb: 10}}\n",
        "unknown key 'sandbox.limits.gpu_mb'; allowed keys here: memory_mb, processes, cpu_s, file_mb, "
        "scratch_mb"),
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


def test_missing_file_is_named_with_what_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "nope.yaml"
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert _error(path).startswith(f"{path}: no such config file; configs/ here holds deceptive.yaml, ")
    monkeypatch.chdir(tmp_path)  # no checkout here: point at the examples the package carries
    assert _error(path) == (f"{path}: no such config file; write an example out with `swarm init "
                            "--example quadratic` (`swarm init --list` names them)")


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
     "unknown key 'stop.bogus'; allowed keys here: max_trials, hours, target_metric, max_cost_usd, "
     "max_refusals"),
    ({"bogus.x": 1},
     "unknown key 'bogus'; allowed keys here: name, target, program, workers, proposer, "
     "acceptance, stop, sandbox, tracking"),
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


# -- every problem at once, with a did-you-mean ------------------------------------------------

TARGET_KEYS = ("repo, editable, readonly, run, metric, tiebreak, budget_s, timeout_s, guard, score, "
               "hidden, max_log_bytes, env, needs")
TOP_KEYS = "name, target, program, workers, proposer, acceptance, stop, sandbox, tracking"


def _lines(path: Path, settings: list[str] | None = None, overrides: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides, settings or [])
    return str(caught.value).splitlines()


def test_every_problem_of_a_file_is_reported_at_once_one_line_each(tmp_path: Path) -> None:
    broken = (VALID.replace("{name: score}", "{name: score, direction: up}")
              .replace("  run: python train.py\n", "") + "workers: {count: many}\n")
    path = _write(tmp_path, broken)
    assert _lines(path) == [
        f"{path}: missing required key 'target.run' (shell command of one experiment, run in the checkout)",
        f"{path}: key 'target.metric.direction': Input should be 'minimize' or 'maximize' (got 'up')",
        f"{path}: key 'workers.count': should be auto or a whole number >= 1 (got 'many')"]


def test_a_misspelt_required_key_is_told_as_the_misspelling_not_as_a_missing_key(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace("budget_s: 1", "budget: 1"))
    assert _lines(path) == [
        f"{path}: unknown key 'target.budget' (did you mean 'target.budget_s'? it is required and "
        f"missing); allowed keys here: {TARGET_KEYS}"]


def test_a_misspelt_optional_key_gets_its_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID + "  gaurd: 'true'\n")
    assert _lines(path) == [
        f"{path}: unknown key 'target.gaurd' (did you mean 'target.guard'?); allowed keys here: "
        f"{TARGET_KEYS}"]


def test_a_key_in_the_wrong_section_is_pointed_to_where_it_belongs(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID + "max_trails: 5\n")
    assert _lines(path) == [
        f"{path}: unknown key 'max_trails' (did you mean 'stop.max_trials'?); allowed keys here: {TOP_KEYS}"]


def test_a_misspelt_section_is_one_problem_with_its_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace("target:", "targt:"))
    assert _lines(path) == [
        f"{path}: unknown key 'targt' (did you mean 'target'? it is required and missing); "
        f"allowed keys here: {TOP_KEYS}"]


def test_a_misspelt_choice_gets_the_allowed_values_and_a_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace("{name: score}", "{name: score, direction: Minimise}"))
    assert _lines(path) == [
        f"{path}: key 'target.metric.direction': Input should be 'minimize' or 'maximize' "
        "(got 'Minimise'); did you mean 'minimize'?"]


def test_an_unrelated_unknown_key_gets_no_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID + "zzz: 1\n")
    assert _lines(path) == [f"{path}: unknown key 'zzz'; allowed keys here: {TOP_KEYS}"]


# -- --set section.key=value ------------------------------------------------------------------

def test_set_reads_values_as_yaml_and_reaches_any_key(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, VALID), None, [
        "stop.hours=0.5", "acceptance.false_accept=0.01", "target.env.FOO=bar", "stop.max_trials=null",
        "workers.count=auto", "target.editable=[train.py, model.py]"])
    assert (config.stop.hours, config.stop.max_trials, config.acceptance.false_accept,
            config.target.env, config.workers.count, config.target.editable) == (
        0.5, None, 0.01, {"FOO": "bar"}, "auto", ["train.py", "model.py"])


def test_set_keeps_text_keys_as_typed(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, VALID), None, [
        "target.env.SEED=7", "target.env.FLAG=yes", "target.run=python train.py --lr: 0.1", "name=123"])
    assert (config.target.env, config.target.run, config.name) == (
        {"SEED": "7", "FLAG": "yes"}, "python train.py --lr: 0.1", "123")


def test_set_makes_a_section_the_file_leaves_out(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, VALID), None, [
        "proposer.price.input_per_mtok=3", "proposer.price.output_per_mtok=15"])
    assert config.proposer.price is not None
    assert (config.proposer.price.input_per_mtok, config.proposer.price.output_per_mtok) == (3.0, 15.0)


def test_set_supplies_what_the_file_lacks(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace("  run: python train.py\n", ""))
    assert load_config(path, None, ["target.run=python other.py"]).target.run == "python other.py"


def test_a_named_flag_wins_over_set_of_the_same_key(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, VALID), {"stop.max_trials": 5}, ["stop.max_trials=9"])
    assert config.stop.max_trials == 5


def test_a_misspelt_set_key_is_blamed_on_set_with_its_suggestion(tmp_path: Path) -> None:
    assert _lines(_write(tmp_path, VALID), ["stop.hourz=0.5", "stpo.hours=1"]) == [
        "--set: unknown key 'stop.hourz' (did you mean 'stop.hours'?); allowed keys here: max_trials, "
        "hours, target_metric, max_cost_usd, max_refusals",
        f"--set: unknown key 'stpo' (did you mean 'stop'?); allowed keys here: {TOP_KEYS}"]


def test_a_bad_set_value_is_blamed_on_set(tmp_path: Path) -> None:
    assert _lines(_write(tmp_path, VALID), ["stop.hours=soon", "acceptance.false_accept=0"]) == [
        "--set: key 'acceptance.false_accept': Input should be greater than 0 (got 0)",
        "--set: key 'stop.hours': Input should be a valid number, unable to parse string as a number "
        "(got 'soon')"]


def test_set_and_file_problems_come_together_each_blamed_on_its_source(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID + "  gaurd: x\n")
    assert _lines(path, ["stop.max_trails=3", "oops", "name.x=1"]) == [
        "--set 'oops': expected section.key=value (e.g. --set stop.hours=0.5 or --set target.env.FOO=bar)",
        "--set: cannot set 'name.x': 'name' is a value ('t'), not a section of keys",
        f"{path}: unknown key 'target.gaurd' (did you mean 'target.guard'?); allowed keys here: {TARGET_KEYS}",
        "--set: unknown key 'stop.max_trails' (did you mean 'stop.max_trials'?); allowed keys here: "
        "max_trials, hours, target_metric, max_cost_usd, max_refusals"]


def test_a_set_value_that_is_not_yaml_is_named(tmp_path: Path) -> None:
    [line] = _lines(_write(tmp_path, VALID), ["stop.hours=[1"])
    assert line.startswith("--set stop.hours: '[1' is not a YAML value (")
