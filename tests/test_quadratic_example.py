"""The quadratic example target runs anywhere and prints the result block the swarm reads."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

__all__: list[str] = []

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "quadratic"
NOISE = 0.02


def _run(tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run one script of a fresh copy of the example with a zero budget."""
    work = tmp_path / "quadratic"
    shutil.copytree(EXAMPLE, work)
    env = {**os.environ, "SWARM_BUDGET_S": "0"}
    return subprocess.run([sys.executable, script], cwd=work, env=env, capture_output=True, text=True, timeout=60)


def test_train_prints_the_result_block(tmp_path: Path) -> None:
    done = _run(tmp_path, "train.py")
    assert done.returncode == 0, done.stderr
    match = re.fullmatch(
        r"---\nscore:            (-?\d+\.\d{6})\ntrue_score:       (\d+\.\d{6})\ntraining_seconds: (\d+\.\d)\n",
        done.stdout,
    )
    assert match is not None, done.stdout
    score, true, seconds = match.groups()
    assert true == "6.705000"
    assert abs(float(score) - 6.705) < 5 * NOISE
    assert seconds == "0.0"


def test_prepare_alone_only_describes_itself(tmp_path: Path) -> None:
    done = _run(tmp_path, "prepare.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("quadratic example harness:")
    assert "---" not in done.stdout
