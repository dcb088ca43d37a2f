"""The config's shape as people name it: which keys a section has, what type a dotted key holds,
and the key or value a misspelling most likely meant. Pure: reads pydantic models, no I/O."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel

__all__ = ["allowed_keys", "annotation_at", "closest", "every_key", "literal_values", "section_model"]


def section_model(root: type[BaseModel], path: Sequence[Any]) -> type[BaseModel] | None:
    """The model of the section at `path` (() is the root), or None where it is not a section."""
    annotation: Any = root
    for part in path:
        model = _model_in(annotation)
        if model is None or str(part) not in model.model_fields:
            return None
        annotation = model.model_fields[str(part)].annotation
    return _model_in(annotation)


def allowed_keys(root: type[BaseModel], path: Sequence[Any]) -> list[str]:
    """The keys of the section at `path`; the nearest enclosing section's where it is not one."""
    for depth in range(len(path), -1, -1):
        model = section_model(root, path[:depth])
        if model is not None:
            return list(model.model_fields)
    return list(root.model_fields)


def annotation_at(root: type[BaseModel], dotted: str) -> Any:
    """The type a dotted key holds (a `dict[str, str]` field's entries included), or None for a
    key the config does not have."""
    annotation: Any = root
    for part in dotted.split("."):
        model = _model_in(annotation)
        if model is not None:
            if part not in model.model_fields:
                return None
            annotation = model.model_fields[part].annotation
        elif typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]
        else:
            return None
    return annotation


def every_key(root: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key of the config, sections and their keys, in the models' order."""
    keys = []
    for name, info in root.model_fields.items():
        keys.append(prefix + name)
        inner = _model_in(info.annotation)
        if inner is not None:
            keys += every_key(inner, f"{prefix}{name}.")
    return keys


def literal_values(annotation: Any) -> list[str]:
    """The values a Literal (or a union holding Literals) allows, as text."""
    if typing.get_origin(annotation) is Literal:
        return [str(value) for value in typing.get_args(annotation)]
    return [value for arg in _union_args(annotation) for value in literal_values(arg)]


def closest(word: str, options: Iterable[str], cutoff: float = 0.7) -> str | None:
    """The option a misspelt `word` most likely meant (case aside), or None when none is close."""
    by_lower = {option.lower(): option for option in options}
    found = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=cutoff)
    return by_lower[found[0]] if found else None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds: itself, or the model of an optional one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    models = [m for m in map(_model_in, _union_args(annotation)) if m is not None]
    return models[0] if len(models) == 1 else None


def _union_args(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return ()

