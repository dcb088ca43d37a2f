"""`--set section.key=value`: a config key given on the command line, its value read as YAML
would read it (so 0.5 is a number, null unsets, [a, b] is a list), except where the key holds
text: `--set target.env.SEED=7` or `--set target.run=python train.py` stay as typed. Pure."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import BaseModel

from swarm.core.config_schema import annotation_at
from swarm.core.errors import ConfigError

__all__ = ["parse_settings", "put_dotted"]

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*")
EXAMPLE = "e.g. --set stop.hours=0.5 or --set target.env.FOO=bar"


def parse_settings(items: Sequence[str], root: type[BaseModel]) -> tuple[dict[str, Any], list[str]]:
    """Dotted key -> value, in the order given (a key given twice: the last wins), and a line
    for each malformed item (reported with the config's own problems, all at once)."""
    settings: dict[str, Any] = {}
    problems = []
    for item in items:
        key, equals, text = item.partition("=")
        key = key.strip()
        if not equals or not _DOTTED.fullmatch(key):
            problems.append(f"--set {item!r}: expected section.key=value ({EXAMPLE})")
            continue
        try:
            settings[key] = _value(text, annotation_at(root, key))
        except yaml.YAMLError as exc:
            problems.append(f"--set {key}: {text!r} is not a YAML value "
                            f"({' '.join(str(exc).split())[:120]})")
    return settings, problems


def put_dotted(data: dict[str, Any], dotted: str, value: Any) -> list[str]:
    """Sets a dotted key in raw config data, making the sections it needs; returns the ones it
    made (so an error inside them is blamed on whoever asked for them, not on the file)."""
    *sections, key = dotted.split(".")
    made = []
    for depth, section in enumerate(sections):
        inner = data.get(section)
        if inner is None:
            inner = data[section] = {}
            made.append(".".join(sections[: depth + 1]))
        elif not isinstance(inner, dict):
            where = ".".join(sections[: depth + 1])
            raise ConfigError(f"cannot set '{dotted}': '{where}' is a value ({inner!r}), not a "
                              "section of keys")
        data = inner
    data[key] = value
    return made


def _value(text: str, annotation: Any) -> Any:
    if annotation is str:
        return text  # '7', 'yes' or '' for a text key mean the text, as the user typed it
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        if _holds_text(annotation):
            return text
        raise
    return text if value is not None and _holds_text(annotation) else value


def _holds_text(annotation: Any) -> bool:
    if annotation is str:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return str in typing.get_args(annotation)
    return False
