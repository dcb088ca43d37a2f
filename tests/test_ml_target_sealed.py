"""The sealed model format: what a trained model may carry into the trusted evaluation."""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ML_TARGET = Path(__file__).resolve().parents[1] / "ml_target"
sys.path.insert(0, str(ML_TARGET))
os.environ.setdefault("ML_TARGET_PROFILE", "cpu")  # train.py's sizes, on any machine
import sealed  # noqa: E402
import train  # noqa: E402

__all__: list[str] = []


@pytest.fixture(scope="module")
def sealed_gpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = train.GPT().eval()
    out = tmp_path_factory.mktemp("sealed")
    sealed.seal(model, torch.zeros(2, train.MAX_SEQ_LEN, dtype=torch.int64), out)
    return model, out


def test_the_sealed_gpt_computes_what_the_module_computes(sealed_gpt: tuple[torch.nn.Module, Path]) -> None:
    model, out = sealed_gpt
    loaded = sealed.load_sealed(out, torch.device("cpu"))
    tokens = torch.randint(0, 256, (2, train.MAX_SEQ_LEN))
    with torch.no_grad():
        assert torch.equal(loaded(tokens), model(tokens))
    assert loaded.num_params == sum(p.numel() for p in model.parameters())


def test_the_graph_is_plain_json_of_aten_operators(sealed_gpt: tuple[torch.nn.Module, Path]) -> None:
    graph = json.loads((sealed_gpt[1] / sealed.GRAPH_FILE).read_text())
    ops = {node["op"] for node in graph["nodes"]}
    assert "aten::scaled_dot_product_attention.default" in ops
    assert all(op == "getitem" or op.startswith("aten::") for op in ops)


def _tampered(out: Path, tmp_path: Path, change) -> Path:
    """A copy of the sealed model with its graph changed by change(graph)."""
    copy = tmp_path / "tampered"
    copy.mkdir()
    graph = json.loads((out / sealed.GRAPH_FILE).read_text())
    change(graph)
    (copy / sealed.GRAPH_FILE).write_text(json.dumps(graph))
    (copy / sealed.TENSORS_FILE).write_bytes((out / sealed.TENSORS_FILE).read_bytes())
    return copy


def _set_first_op(graph: dict, op: str) -> None:
    graph["nodes"][0]["op"] = op


@pytest.mark.parametrize(("change", "message"), [
    (lambda g: _set_first_op(g, "aten::add_.Tensor"),
     "operator aten::add_.Tensor mutates its arguments; a sealed model must be stateless"),
    (lambda g: _set_first_op(g, "aten::from_file.default"),
     "operator aten::from_file.default is not allowed in a sealed model"),
    (lambda g: _set_first_op(g, "mylib::steal.default"),
     "operator 'mylib::steal.default' is not allowed: only aten::<op>.<overload> operators are"),
    (lambda g: _set_first_op(g, "builtins.eval"),
     "operator 'builtins.eval' is not allowed: only aten::<op>.<overload> operators are"),
    (lambda g: _set_first_op(g, "aten::native_batch_norm.default"),
     "operator aten::native_batch_norm.default is not allowed in a sealed model"),
    (lambda g: _set_first_op(g, "aten::empty_like.default"),
     "operator aten::empty_like.default is not allowed in a sealed model"),
    (lambda g: _set_first_op(g, "aten::rand_like.default"),
     "operator aten::rand_like.default is not allowed in a sealed model"),
    (lambda g: _set_first_op(g, "aten::stride.int"), "operator aten::stride.int is not allowed in a sealed model"),
    (lambda g: _set_first_op(g, "aten::no_such_op.default"), "unknown operator aten::no_such_op.default"),
    (lambda g: g["nodes"][0].update(args={"list": [{"ref": 10_000}]}),
     "a node refers to value 10000, which does not come before it"),
    (lambda g: g["inputs"].append({"kind": "input"}),
     "the model must take exactly one input (the tokens), it takes 2"),
    (lambda g: g.update(format="other/9"), "is not a ml_target.sealed/1 graph"),
], ids=["mutating", "reads-files", "custom-namespace", "python-builtin", "batch-norm-running-stats",
        "uninitialized-memory", "random", "layout-query", "unknown", "forward-ref", "two-inputs", "format"])
def test_a_tampered_graph_is_refused_naming_why(sealed_gpt: tuple[torch.nn.Module, Path], tmp_path: Path,
                                                change, message: str) -> None:
    copy = _tampered(sealed_gpt[1], tmp_path, change)
    with pytest.raises(sealed.SealError) as caught:
        sealed.load_sealed(copy, torch.device("cpu"))
    assert message in str(caught.value)


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_tensors_file_that_would_run_code_is_refused_without_running_it(
        tmp_path: Path, sealed_gpt: tuple[torch.nn.Module, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "pickled"
    copy.mkdir()
    (copy / sealed.GRAPH_FILE).write_bytes((sealed_gpt[1] / sealed.GRAPH_FILE).read_bytes())
    (copy / sealed.TENSORS_FILE).write_bytes(pickle.dumps({"t0": _Payload()}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(sealed.SealError, match="cannot read the sealed model"):
        sealed.load_sealed(copy, torch.device("cpu"))
    assert not (tmp_path / "pwned").exists()


def test_a_symlinked_model_file_is_refused(tmp_path: Path, sealed_gpt: tuple[torch.nn.Module, Path]) -> None:
    copy = tmp_path / "linked"
    copy.mkdir()
    (copy / sealed.GRAPH_FILE).write_bytes((sealed_gpt[1] / sealed.GRAPH_FILE).read_bytes())
    (copy / sealed.TENSORS_FILE).symlink_to(sealed_gpt[1] / sealed.TENSORS_FILE)
    with pytest.raises(sealed.SealError, match="is a symbolic link"):
        sealed.load_sealed(copy, torch.device("cpu"))


def test_a_model_whose_weights_changed_is_caught(sealed_gpt: tuple[torch.nn.Module, Path]) -> None:
    loaded = sealed.load_sealed(sealed_gpt[1], torch.device("cpu"))
    loaded.assert_unchanged()
    next(t for t in loaded.inputs if t is not None).add_(1.0)  # what a stateful graph would do
    with pytest.raises(sealed.SealError, match="changed its own tensors"):
        loaded.assert_unchanged()


def test_a_missing_model_says_what_train_py_must_call(tmp_path: Path) -> None:
    with pytest.raises(sealed.SealError) as caught:
        sealed.load_sealed(tmp_path, torch.device("cpu"))
    assert str(caught.value) == (f"{tmp_path / 'graph.json'} is missing: train.py must end with "
                                 f"prepare.save_for_evaluation(model)")


def test_the_gpu_recipe_compiles_and_trains_in_bf16_then_seals_exactly(tmp_path: Path) -> None:
    """The GPU path (torch.compile, bf16 autocast) on the CPU: two steps, then the seal."""
    torch.manual_seed(0)
    model = train.GPT()
    compiled = torch.compile(model)
    optimizer = train.make_optimizer(model)
    tokens = torch.randint(1, 256, (2, train.MAX_SEQ_LEN + 1))
    losses = []
    for _ in range(2):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(compiled(tokens[:, :-1]).view(-1, 256), tokens[:, 1:].reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert all(map(torch.isfinite, torch.tensor(losses)))
    sealed.seal(model.eval(), tokens[:, :-1], tmp_path)
    with torch.no_grad():
        assert torch.equal(sealed.load_sealed(tmp_path, torch.device("cpu"))(tokens[:, :-1]), model(tokens[:, :-1]))
