"""The swarm on a real local Ray instance with llm proposers talking to a fake provider."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from swarm.core.config import load_config  # noqa: E402
from swarm.shell.driver import RunOptions, run_swarm  # noqa: E402
from tests.conftest import local_ray as start_local_ray  # noqa: E402
from tests.fake_llm import FakeLLM, Step  # noqa: E402

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[1]
PRICE = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}  # 1000 in + 100 out = $0.0045 a request


def edit(old: str, new: str) -> Step:
    return Step(f"Hypothesis: move {old.split()[0]} toward its optimum\ntrain.py\n<<<<<<< SEARCH\n{old}\n"
                f"=======\n{new}\n>>>>>>> REPLACE\n")


@pytest.fixture(scope="module")
def local_ray(ray_home: Path):
    # Workers inherit the key from the driver; the sandbox scrubs it from trials.
    with start_local_ray(ray_home, "swarm-llm", 4, OPENAI_API_KEY="test-key"):
        yield


def test_llm_workers_improve_best_pay_for_it_and_stop_at_max_cost(local_ray, tmp_path: Path) -> None:
    script = [edit("A = 1.0", "A = 3.0"), edit("B = 1.0", "B = 0.3"), edit("C = 1.0", "C = 0.25"),
              Step("no usable answer")]  # repeated from here on: failed proposals, still paid for
    with FakeLLM(script) as fake:
        config = load_config(ROOT / "configs" / "quadratic.yaml", {
            "target.repo": str(ROOT / "examples" / "quadratic"), "target.budget_s": 0.2,
            "workers.count": 2, "stop.max_trials": 60, "stop.max_cost_usd": 0.05,
            "proposer.kind": "llm", "proposer.model": "openai/fake-model",
            "proposer.api_base": fake.openai_base, "proposer.price": PRICE,
            "proposer.retry_base_s": 0.1})
        status = run_swarm(RunOptions(config, tmp_path / "run"))
    assert status.accepted >= 1
    assert status.best.mean < status.baseline.mean - 1.0
    assert status.stop_reason.startswith("max_cost_usd reached")
    assert status.evaluations < 60
    assert status.cost_usd == pytest.approx(0.0045 * len(fake.requests))
    events = [json.loads(line) for line in (tmp_path / "run" / "ledger.jsonl").read_text().splitlines()]
    paid = [e for e in events if e.get("cost_usd")]
    assert paid and all(e["event"] in ("trial_started", "proposal_failed") for e in paid)
    rows = [line.split("\t") for line in (tmp_path / "run" / "results.tsv").read_text().splitlines()]
    assert rows[0][-1] == "cost_usd" and any(float(r[-1]) > 0 for r in rows[1:])
    assert all(r["headers"]["authorization"] == "Bearer test-key" for r in fake.requests)
