"""bench/simulate.py: the real decisions in virtual time. Its model of the pool merges as the real
one does, its table prints, and it agrees with a real Ray run of the same target and settings."""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "simulate.py"

__all__: list[str] = []


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("simulate", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["simulate"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


sim = _load()


def test_the_model_pool_merges_changes_to_different_constants_and_refuses_two_to_one() -> None:
    base = (("A", 1.0), ("B", 1.0), ("C", 1.0))
    ours, theirs = (("A", 2.0), ("B", 1.0), ("C", 1.0)), (("A", 1.0), ("B", 0.5), ("C", 1.0))
    assert sim.three_way(base, ours, theirs) == (("A", 2.0), ("B", 0.5), ("C", 1.0))
    assert sim.three_way(base, ours, (("A", 3.0), ("B", 1.0), ("C", 1.0))) is None
    assert sim.three_way(base, ours, ours) == ours  # the same change on both sides


def test_a_simulated_run_spends_its_evaluations_and_only_improves_where_it_accepts() -> None:
    target = sim.example("quadratic", 60)
    out = sim.simulate(target, sim.Settings(4, "uniform", sim.SWARM, 3, 60, float("inf")))
    assert out.evaluations == 60
    assert out.accepts and all(after < before for _t, before, after in out.accepts)  # no false accept here
    assert out.true_after(60) == out.accepts[-1][2] < out.start_true
    assert sum(out.kinds.values()) == 60  # every evaluation, by what it was for


def test_quick_prints_the_table_with_a_speedup_for_each_worker_count() -> None:
    # one process: the other test module running beside this one may time its trials
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--processes", "1"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| quadratic")
            or line.startswith("| manyknob")]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [
        ("quadratic", "1"), ("quadratic", "8"), ("manyknob", "1"), ("manyknob", "8")]
    for row in rows:
        assert float(row[2]) >= 0 and 0 <= int(row[7]) <= int(row[6])  # false accepts of accepts


def _ledger_figures(run_dir: Path, evaluations: int) -> tuple[int, Counter[str]]:
    """Accepts and evaluations by kind over the run's first `evaluations` evaluations: the
    simulator stops there, while the real run winds down past its budget (owed confirmations)."""
    events = [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]
    cut = [i for i, e in enumerate(events) if e["event"] == "trial_finished"][evaluations - 1] + 1
    starts = {e["trial"]: e for e in events if e["event"] == "trial_started"}
    kinds: Counter[str] = Counter()
    for e in events[:cut]:
        if e["event"] == "trial_finished":
            start = starts[e["trial"]]
            kinds["union" if start.get("parts") else "stale re-run" if start["kind"] == "candidate"
                  and start.get("of") else start["kind"]] += 1
    accepts = sum(1 for e in events[:cut] if e["event"] == "verdict" and e["verdict"] == "accepted")
    return accepts, kinds


@pytest.mark.ray
def test_the_simulator_agrees_with_a_real_ray_run_of_the_same_target(tmp_path: Path, ray_home: Path) -> None:
    """manyknob, 4 workers, 48 evaluations, configs/manyknob.yaml's acceptance: the real run's
    accepts and its mix of evaluations fall inside what the simulator gives over 20 seeds (its
    accepts within the simulated range, each kind's share within 15 points of the median), both
    counted over the first 48 evaluations."""
    from swarm.core.config import load_config
    from swarm.shell.driver import RunOptions, run_swarm
    from tests.conftest import local_ray

    evaluations, workers = 48, 4
    config = load_config(ROOT / "configs" / "manyknob.yaml", {
        "target.repo": str(ROOT / "examples" / "manyknob"), "target.budget_s": 0.3,
        "workers.count": workers, "stop.max_trials": evaluations, "proposer.seed": 5})
    with local_ray(ray_home, "simulate-agrees", num_cpus=workers):
        run_swarm(RunOptions(config, tmp_path / "run"))
    real_accepts, real_kinds = _ledger_figures(tmp_path / "run", evaluations)

    target = sim.example("manyknob", evaluations)
    acceptance = config.acceptance.model_dump(exclude={"noise_k"})
    simulated = [sim.simulate(target, sim.Settings(workers, "uniform", acceptance, seed, evaluations, float("inf")))
                 for seed in range(20)]
    accepts = sorted(len(s.accepts) for s in simulated)
    assert accepts[0] <= real_accepts <= accepts[-1], (real_accepts, accepts)
    for kind in ("baseline", "candidate", "confirm", "union"):
        share = statistics.median(s.kinds[kind] / sum(s.kinds.values()) for s in simulated)
        real = real_kinds[kind] / sum(real_kinds.values())
        assert abs(real - share) <= 0.15, (kind, real, share, real_kinds)
