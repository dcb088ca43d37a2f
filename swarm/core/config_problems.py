"""Every problem of a config at once, one line each: where the value came from (the file or
--set), the key, what is allowed, and a did-you-mean where a key or a value looks misspelt.
Pure: pydantic's errors in, lines out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from swarm.core.config_schema import allowed_keys, annotation_at, closest, every_key, literal_values, section_model

__all__ = ["describe_errors", "Location", "SourceOf"]

Location = tuple[Any, ...]
SourceOf = Callable[[Location], str]  # where the value at a location came from: a file, --set


def describe_errors(errors: Sequence[ErrorDetails], root: type[BaseModel], source_of: SourceOf) -> list[str]:
    """One line per problem, section by section. A misspelt required key is one problem, told
    as the misspelling with its suggestion, not also as the key that is missing."""
    missing = {tuple(e["loc"]) for e in errors if e["type"] == "missing"}
    meant = {tuple(e["loc"]): _meant(root, tuple(e["loc"])) for e in errors if e["type"] == "extra_forbidden"}
    told = {m for m in meant.values() if m in missing}
    lines = []
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "missing" and loc in told:
            continue
        lines.append(f"{source_of(loc)}: {_describe(error, root, meant.get(loc), missing)}")
    return list(dict.fromkeys(lines))  # a union's branches may say the same thing twice


def _describe(error: ErrorDetails, root: type[BaseModel], meant: Location | None,
              missing: set[Location]) -> str:
    loc = tuple(error["loc"])
    key = _dotted(loc)
    if error["type"] == "extra_forbidden":
        guess = ""
        if meant is not None:
            required = " it is required and missing" if meant in missing else ""
            guess = f" (did you mean '{_dotted(meant)}'?{required})"
        return f"unknown key '{key}'{guess}; allowed keys here: {', '.join(allowed_keys(root, loc[:-1]))}"
    if error["type"] == "missing":
        return f"missing required key '{key}'{_what_it_is(root, loc)}"
    if error["type"] == "value_error":  # our own validators: their message names the values
        return f"key '{key}': {error['msg'].removeprefix('Value error, ')}"
    text = f"key '{key}': {error['msg']} (got {_shown(error.get('input'))})"
    if error["type"] == "literal_error":
        value = closest(str(error.get("input")), literal_values(annotation_at(root, key)))
        text += f"; did you mean '{value}'?" if value else ""
    return text


def _meant(root: type[BaseModel], loc: Location) -> Location | None:
    """The key an unknown one most likely meant: a close sibling, else a key of that name (or
    close to it) in another section, as `max_trials` at the top level means `stop.max_trials`."""
    parent, word = loc[:-1], str(loc[-1])
    sibling = closest(word, allowed_keys(root, parent))
    if sibling is not None:
        return (*parent, sibling)
    elsewhere: dict[str, str] = {}
    for dotted in every_key(root):
        elsewhere.setdefault(dotted.rsplit(".", 1)[-1], dotted)
    # stricter than for siblings: any key of any section is a wide net
    leaf = word if word in elsewhere else closest(word, elsewhere, cutoff=0.8)
    return tuple(elsewhere[leaf].split(".")) if leaf is not None else None


def _what_it_is(root: type[BaseModel], loc: Location) -> str:
    model = section_model(root, loc[:-1])
    info = model.model_fields.get(str(loc[-1])) if model is not None else None
    return f" ({info.description})" if info is not None and info.description else ""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _dotted(loc: Location) -> str:
    return ".".join(str(part) for part in loc)
