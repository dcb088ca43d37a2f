"""The class of machine a worker measures on: noise and baselines are kept per class."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

__all__ = ["hardware_class"]


def hardware_class() -> str:
    """The kind of machine a metric was measured on (noise and baselines are per class): the
    model of the first GPU this worker was given, else the CPU model."""
    gpus = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    if gpus:
        try:  # nvidia-smi numbers GPUs as the machine does, as Ray's CUDA_VISIBLE_DEVICES does
            found = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader",
                                    "-i", gpus[0].strip()], capture_output=True, text=True, timeout=20)
            if found.returncode == 0 and found.stdout.strip():
                return "gpu:" + found.stdout.strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired):
            pass
        return "gpu:unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return "cpu:" + " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return f"cpu:{platform.machine()}"
