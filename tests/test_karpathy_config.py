"""configs/karpathy_autoresearch.yaml: karpathy/autoresearch as a target, unchanged.

No network here, so the baseline trial runs on a local repository shaped like it (train.py,
prepare.py reading ~/.cache/autoresearch, pyproject.toml, uv.lock, program.md), cloned as the
URL would be, through the worker's real jail and the config's own run command (with `uv run
--no-sync` read as `python` where uv is not installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from swarm.core.config import SwarmConfig, load_config
from swarm.core.envvars import expanded_env, worker_search_path
from swarm.core.preflight import needs_problems, run_environ
from swarm.shell.driver import resolve_target_repo
from workers.classify import classify_trial
from workers.evaluation import Evaluator, jail_missing
from workers.result_block import metric_value, parse_summary

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "karpathy_autoresearch.yaml"
UV = shutil.which("uv")

# What the real train.py prints at the end (its format strings, github.com/karpathy/autoresearch).
REAL_SUMMARY = textwrap.dedent('''\
    step 00953 (100.0%) | loss: 3.210000 | lrm: 0.00 | dt: 310ms | remaining: 0s
    ---
    val_bpb:          0.997900
    training_seconds: 300.1
    total_seconds:    325.9
    peak_vram_mb:     45060.2
    mfu_percent:      39.80
    total_tokens_M:   499.6
    num_steps:        953
    num_params_M:     50.3
    depth:            8
''')

PREPARE = textwrap.dedent('''\
    """Stands in for autoresearch's prepare.py: constants, and the data under ~/.cache."""
    import os

    TIME_BUDGET = 300
    CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "autoresearch")
    DATA_DIR = os.path.join(CACHE_DIR, "data")
    TOKENIZER_DIR = os.path.join(CACHE_DIR, "tokenizer")


    def val_bytes():
        with open(os.path.join(DATA_DIR, "shard_06542.parquet"), "rb") as f:
            return f.read()
''')

# Tiny and CPU-only, but the same output shape as the real one: a \\r progress line, then the block.
TRAIN = textwrap.dedent('''\
    import time
    from prepare import TIME_BUDGET, TOKENIZER_DIR, val_bytes

    DEPTH = 4
    t_start = time.time()
    with open(TOKENIZER_DIR + "/tokenizer.pkl", "rb") as f:
        vocab = len(f.read())
    data = val_bytes()
    val_bpb = len(data) / (len(data) + vocab * DEPTH)
    print(f"Time budget: {TIME_BUDGET}s")
    print("\\rstep 00001 (100.0%) | loss: 1.000000 | remaining: 0s    ", end="", flush=True)
    print()
    t_end = time.time()
    print("---")
    print(f"val_bpb:          {val_bpb:.6f}")
    print(f"training_seconds: {t_end - t_start:.1f}")
    print(f"total_seconds:    {t_end - t_start:.1f}")
    print(f"peak_vram_mb:     {0.0:.1f}")
    print(f"mfu_percent:      {0.0:.2f}")
    print(f"total_tokens_M:   {len(data) / 1e6:.1f}")
    print(f"num_steps:        {1}")
    print(f"num_params_M:     {0.0:.1f}")
    print(f"depth:            {DEPTH}")
''')

VAL_BYTES = b"x" * 300
TOKENIZER = b"t" * 25  # val_bpb = 300 / (300 + 25 * 4) = 0.75


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout


def _autoresearch_like(where: Path) -> Path:
    """A git repository with autoresearch's layout, one commit."""
    files = {"train.py": TRAIN, "prepare.py": PREPARE, "program.md": "# autoresearch\nEdit train.py only.\n",
             "pyproject.toml": '[project]\nname = "autoresearch"\nversion = "0.1.0"\n', "uv.lock": "version = 1\n"}
    where.mkdir()
    for name, text in files.items():
        (where / name).write_text(text)
    _git(where, "init", "-q")
    _git(where, "add", *files)
    _git(where, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "autoresearch as given")
    return where


def _cache(where: Path) -> Path:
    """What `uv run prepare.py` leaves: the data shards and the tokenizer."""
    (where / "data").mkdir(parents=True)
    (where / "tokenizer").mkdir()
    (where / "data" / "shard_06542.parquet").write_bytes(VAL_BYTES)
    (where / "tokenizer" / "tokenizer.pkl").write_bytes(TOKENIZER)
    return where


def _local_config(repo: Path, cache: Path) -> SwarmConfig:
    config = load_config(CONFIG, {"target.repo": str(repo), "target.env.AUTORESEARCH_CACHE": str(cache),
                                  "target.env.UV_PROJECT_ENVIRONMENT": sys.prefix})
    if UV is None:  # uv is not installed here: the same command, run by the worker's python
        config = config.with_overrides({"target.run": config.target.run.replace("uv run --no-sync", "python")})
    return config


def test_the_shipped_config_validates_and_says_what_the_brief_asks() -> None:
    config = load_config(CONFIG)
    target = config.target
    assert target.repo == "https://github.com/karpathy/autoresearch.git"
    assert resolve_target_repo(config, CONFIG).target.repo == target.repo  # a URL is cloned, not looked up
    assert target.editable == ["train.py"] and {"prepare.py", "program.md"} <= set(target.readonly)
    assert config.program == "program.md"
    assert target.run.endswith("uv run --no-sync train.py")
    assert (target.metric.name, target.metric.direction, target.score) == ("val_bpb", "minimize", None)
    assert target.budget_s == 300 and target.timeout_s > target.budget_s
    assert (config.workers.count, config.workers.gpus_per_worker) == ("auto", 1)
    assert "$AUTORESEARCH_CACHE" in config.sandbox.read and config.sandbox.isolation == "namespaces"
    assert target.needs and all("uv run prepare.py" in n.hint for n in target.needs
                                if n.path.startswith("$AUTORESEARCH_CACHE"))
    assert "trusted only as far as the agent is" in CONFIG.read_text()


def test_our_result_block_reads_what_autoresearchs_train_py_prints() -> None:
    summary = parse_summary(REAL_SUMMARY)
    assert metric_value(summary, "val_bpb") == 0.9979
    assert list(summary) == ["val_bpb", "training_seconds", "total_seconds", "peak_vram_mb", "mfu_percent",
                             "total_tokens_M", "num_steps", "num_params_M", "depth"]


def test_the_data_needs_point_at_what_prepare_py_writes(tmp_path: Path) -> None:
    config = _local_config(tmp_path / "repo", _cache(tmp_path / "cache"))
    assert needs_problems(config.target.needs, None, run_environ(config, os.environ)) == []
    bare = _local_config(tmp_path / "repo", tmp_path / "nothing")
    problems = needs_problems(bare.target.needs, None, run_environ(bare, os.environ))
    assert len(problems) == 2 and all("uv run prepare.py" in p.message for p in problems), problems


@pytest.mark.skipif(jail_missing() is not None, reason=f"no jail here: {jail_missing()}")
def test_a_baseline_trial_runs_in_the_jail_and_reads_the_data_through_home(tmp_path: Path) -> None:
    origin = _autoresearch_like(tmp_path / "autoresearch")
    config = _local_config(origin, _cache(tmp_path / "cache"))
    checkout = tmp_path / "w0" / "repo"
    subprocess.run(["git", "clone", "-q", str(origin), str(checkout)], check=True)
    files = _git(checkout, "ls-files").split()
    # As workers/loop.py builds it: target.env expanded here, HOME moved to the worker's scratch.
    env = {**expanded_env(config.target.env), "HOME": str(tmp_path / "w0" / "home"),
           "PATH": worker_search_path(sys.executable, os.environ), "PYTHONUNBUFFERED": "1",
           "SWARM_BUDGET_S": f"{config.target.budget_s:g}"}
    (tmp_path / "w0" / "home").mkdir()

    run = Evaluator(config, checkout, tmp_path / "w0").evaluate("00001", env, files)

    status, metric, metrics, reason = classify_trial(run, config.target.metric.name)
    assert (status, reason) == ("ok", ""), run.log()
    assert metric == 0.75 and metrics["depth"] == 4 and metrics["num_steps"] == 1
    assert run.isolated
