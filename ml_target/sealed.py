"""A trained model as a sealed graph: what crosses from train.py to the trusted evaluation.

train.py's model is the candidate's code, so the harness never imports or unpickles anything it
wrote. Instead the model is traced with torch.export into a flat list of ATen operators, written
as JSON (the graph) plus a tensors-only file (the weights). The evaluation rebuilds it from those
two files and runs it with its own small interpreter, which admits only:

- operators of the `aten` namespace whose schema mutates nothing (so a call cannot keep state
  between calls, e.g. remember a scored window and replay it when the causality check comes),
  minus a few with side effects outside the tensors (files, printing, the global RNG seed);
- arguments that are numbers, strings, dtypes, devices, layouts, memory formats, lists of those,
  or earlier values of the graph.

Agents must not edit this file (the swarm hash-checks it).
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

GRAPH_FILE = "graph.json"
TENSORS_FILE = "tensors.pt"
FORMAT = "ml_target.sealed/1"

# Operators with effects beyond their outputs: file access, printing, global RNG or grad state.
DENIED_OPS = frozenset({
    "from_file", "save", "_print", "warn", "manual_seed", "seed", "set_grad_enabled",
    "record_stream", "pin_memory", "_pin_memory", "set_data",
    "_cufft_set_plan_cache_max_size", "_cufft_clear_plan_cache",
    # Layout queries would let a graph tell one call's input from another's.
    "stride", "sym_stride", "storage_offset", "sym_storage_offset", "is_contiguous",
    "is_non_overlapping_and_dense", "is_set_to", "_has_same_storage_numel",
})
# Whole families refused by name, because their schemas do not show what they do:
# - batch norms update running statistics in place in training mode (state between calls);
# - random operators advance the global generator (state between calls);
# - empty tensors hold whatever memory held before.
DENIED_FRAGMENTS = ("batch_norm", "instance_norm", "rand", "bernoulli", "normal", "uniform",
                    "exponential", "cauchy", "geometric", "poisson", "multinomial", "dropout",
                    "empty")
_ENUMS: dict[str, Callable[[str], Any]] = {
    "dtype": lambda name: _attr_of_type(name, torch.dtype),
    "layout": lambda name: _attr_of_type(name, torch.layout),
    "memory_format": lambda name: _attr_of_type(name, torch.memory_format),
    "device": lambda name: torch.device(name),
}


class SealError(ValueError):
    """The sealed model cannot be used: malformed, forbidden operator, wrong shape."""


# ---------------------------------------------------------------------------------------------
# Writing (runs inside the jail, as part of train.py's process)

def seal(model: torch.nn.Module, example: torch.Tensor, out_dir: Path) -> None:
    """Exports model(example) and writes it to out_dir as graph.json + tensors.pt."""
    with torch.no_grad():
        program = torch.export.export(model, (example,), strict=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    graph, tensors = _encode_program(program)
    torch.save(tensors, out_dir / TENSORS_FILE)
    (out_dir / GRAPH_FILE).write_text(json.dumps(graph))


def _encode_program(program: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    spec_of = {spec.arg.name: spec for spec in program.graph_signature.input_specs}
    state = {**program.state_dict, **program.constants}
    index: dict[str, int] = {}
    inputs: list[dict[str, Any]] = []
    nodes: list[dict[str, Any]] = []
    tensors: dict[str, torch.Tensor] = {}
    output: Any = None
    for node in program.graph.nodes:
        if node.op == "placeholder":
            spec = spec_of[node.name]
            kind = spec.kind.name
            if kind == "USER_INPUT":
                inputs.append({"kind": "input"})
            else:
                key = f"t{len(tensors)}"
                tensors[key] = state[spec.target].detach().clone().contiguous()
                inputs.append({"kind": "parameter" if kind == "PARAMETER" else "constant", "tensor": key})
            index[node.name] = len(index)
        elif node.op == "call_function":
            nodes.append({"op": _op_name(node.target), "args": _encode(node.args, index),
                          "kwargs": _encode(dict(node.kwargs), index)})
            index[node.name] = len(index)
        elif node.op == "output":
            output = _encode(node.args[0], index)
    return {"format": FORMAT, "inputs": inputs, "nodes": nodes, "output": output}, tensors


def _op_name(target: Any) -> str:
    if target is operator.getitem:
        return "getitem"
    if isinstance(target, torch._ops.OpOverload):
        return f"{target.namespace}::{target._opname}.{target._overloadname}"
    raise SealError(f"the exported graph calls {target!r}, which is not an ATen operator")


def _encode(value: Any, index: dict[str, int]) -> Any:
    if isinstance(value, torch.fx.Node):
        return {"ref": index[value.name]}
    if isinstance(value, (list, tuple)):
        return {"list": [_encode(v, index) for v in value]}
    if isinstance(value, dict):
        return {"map": {k: _encode(v, index) for k, v in value.items()}}
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    for kind, cls in (("dtype", torch.dtype), ("layout", torch.layout),
                      ("memory_format", torch.memory_format), ("device", torch.device)):
        if isinstance(value, cls):
            return {kind: str(value).removeprefix("torch.")}
    raise SealError(f"the exported graph has an argument of type {type(value).__name__}")


# ---------------------------------------------------------------------------------------------
# Reading and running (the trusted side)

@dataclass
class SealedModel:
    """A graph of ATen calls plus its tensors; call it with a [B, T] token tensor."""

    inputs: list[Any]  # a tensor, or None where the user input goes
    nodes: list[tuple[Any, Any, Any]]  # (callable, encoded args, encoded kwargs)
    output: Any
    num_params: int
    pristine: list[torch.Tensor]  # copies of the tensors as loaded

    def assert_unchanged(self) -> None:
        """Raises SealError if a call changed the model's own tensors (a way to keep state)."""
        current = [t for t in self.inputs if t is not None]
        if any(not torch.equal(a, b) for a, b in zip(current, self.pristine, strict=True)):
            raise SealError("the model changed its own tensors during evaluation; it must be stateless")

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        values: list[Any] = [tokens if t is None else t for t in self.inputs]
        for fn, args, kwargs in self.nodes:
            values.append(fn(*_decode(args, values), **_decode(kwargs, values)))
        out = _decode(self.output, values)
        result = out[0] if isinstance(out, (list, tuple)) and len(out) == 1 else out
        if not isinstance(result, torch.Tensor):
            raise SealError(f"the model returned {type(result).__name__}, not a tensor of logits")
        return result


def load_sealed(model_dir: Path, device: torch.device) -> SealedModel:
    """The sealed model in model_dir, checked operator by operator, its tensors on device."""
    graph_path, tensors_path = model_dir / GRAPH_FILE, model_dir / TENSORS_FILE
    for path in (graph_path, tensors_path):
        if path.is_symlink():  # it would be followed here, outside the jail
            raise SealError(f"{path} is a symbolic link; the sealed model must be plain files")
        if not path.is_file():
            raise SealError(f"{path} is missing: train.py must end with prepare.save_for_evaluation(model)")
    try:
        graph = json.loads(graph_path.read_text())
        # weights_only: a tensors-only unpickler, so the file cannot run code here.
        tensors = torch.load(tensors_path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001  (any malformed file is the same verdict)
        raise SealError(f"cannot read the sealed model in {model_dir}: {exc}") from exc
    if not isinstance(graph, dict) or graph.get("format") != FORMAT:
        raise SealError(f"{graph_path} is not a {FORMAT} graph")
    if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        raise SealError(f"{tensors_path} must hold a dict of tensors")
    return _build(graph, tensors)


def _build(graph: dict[str, Any], tensors: dict[str, torch.Tensor]) -> SealedModel:
    inputs: list[Any] = []
    num_params = 0
    for spec in graph.get("inputs", []):
        if spec.get("kind") == "input":
            inputs.append(None)
            continue
        tensor = tensors.get(spec.get("tensor"))
        if tensor is None:
            raise SealError(f"the graph names a tensor {spec.get('tensor')!r} that tensors.pt lacks")
        num_params += tensor.numel() if spec.get("kind") == "parameter" else 0
        inputs.append(tensor)
    if inputs.count(None) != 1:
        raise SealError(f"the model must take exactly one input (the tokens), it takes {inputs.count(None)}")
    nodes = []
    for position, node in enumerate(graph.get("nodes", [])):
        _check_refs(node.get("args"), len(inputs) + position)
        _check_refs(node.get("kwargs"), len(inputs) + position)
        nodes.append((_resolve(node.get("op")), node.get("args", {"list": []}), node.get("kwargs", {"map": {}})))
    _check_refs(graph.get("output"), len(inputs) + len(nodes))
    pristine = [t.clone() for t in inputs if t is not None]
    return SealedModel(inputs, nodes, graph.get("output"), num_params, pristine)


def _resolve(name: Any) -> Callable[..., Any]:
    """The callable for an operator name, refusing anything outside the allowed set."""
    if name == "getitem":
        return _getitem
    if not isinstance(name, str) or not name.startswith("aten::") or "." not in name:
        raise SealError(f"operator {name!r} is not allowed: only aten::<op>.<overload> operators are")
    opname, overload = name.removeprefix("aten::").rsplit(".", 1)
    if opname in DENIED_OPS or any(fragment in opname for fragment in DENIED_FRAGMENTS):
        raise SealError(f"operator {name} is not allowed in a sealed model "
                        f"(it has side effects, keeps state or reads memory it was not given)")
    try:
        op = getattr(getattr(torch.ops.aten, opname), overload)
    except (AttributeError, RuntimeError) as exc:
        raise SealError(f"unknown operator {name}") from exc
    if op._schema.is_mutable:
        raise SealError(f"operator {name} mutates its arguments; a sealed model must be stateless")
    return op


def _getitem(container: Any, i: int) -> Any:
    if not isinstance(container, (list, tuple)) or not isinstance(i, int):
        raise SealError("getitem applies only to an operator's tuple of outputs")
    return container[i]


def _check_refs(encoded: Any, limit: int) -> None:
    """Every reference must point at an earlier value, so the graph is a straight line."""
    if isinstance(encoded, dict):
        if "ref" in encoded:
            ref = encoded["ref"]
            if not isinstance(ref, int) or isinstance(ref, bool) or not 0 <= ref < limit:
                raise SealError(f"a node refers to value {ref!r}, which does not come before it")
            return
        for value in encoded.values():
            _check_refs(value, limit)
    elif isinstance(encoded, list):
        for value in encoded:
            _check_refs(value, limit)


def _decode(encoded: Any, values: list[Any]) -> Any:
    if encoded is None or isinstance(encoded, (bool, int, float, str)):
        return encoded
    if not isinstance(encoded, dict) or len(encoded) != 1:
        raise SealError(f"malformed argument {encoded!r:.80}")
    (kind, body), = encoded.items()
    if kind == "ref":
        return values[body]
    if kind == "list" and isinstance(body, list):
        return [_decode(v, values) for v in body]
    if kind == "map" and isinstance(body, dict):
        return {str(k): _decode(v, values) for k, v in body.items()}
    if kind == "float" and body in ("inf", "-inf", "nan"):
        return float(body)
    if kind in _ENUMS and isinstance(body, str):
        return _ENUMS[kind](body)
    raise SealError(f"malformed argument {encoded!r:.80}")


def _attr_of_type(name: str, cls: type) -> Any:
    value = getattr(torch, name, None) if name.isidentifier() else None
    if not isinstance(value, cls):
        raise SealError(f"{name!r} is not a torch {cls.__name__}")
    return value
