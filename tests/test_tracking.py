"""Tracking in MLflow and W&B, with the real libraries against their local stores (no network):
what the tracker holds equals what the ledger says, step by step, after a resume too, and a
tracker that is down neither stops the run nor loses a step."""

from __future__ import annotations

import json
import logging
import re
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from coordinator.tracking import StepMaker, TrackedStep, flat_params, run_key, steps_of
from coordinator.trackers import Follower, MlflowTracker, default_uri, how_to_look
from swarm.core.config import SwarmConfig, TrackingSpec, load_config
from swarm.core.errors import ConfigError
from swarm.core.events import Judged, RunStarted, TrialFinished
from swarm.core.ledger import read_events
from swarm.core.preflight import tracking_problems
from swarm.core.values import EVALUATED_STATUSES
from tests.synthetic_ledger import write_synthetic_run

ROOT = Path(__file__).resolve().parents[1]
QUADRATIC = ROOT / "configs" / "quadratic.yaml"
SHOWN = ("ok", "best_so_far", "score", "cost_usd", "seconds")  # the metrics compared step by step


def ledger_steps(run_dir: Path) -> list[TrackedStep]:
    return steps_of(list(read_events(run_dir / "ledger.jsonl")))


def expected(steps: list[TrackedStep], name: str) -> list[tuple[int, float]]:
    return [(s.step, v) for s in steps if (v := s.numbers("score").get(name)) is not None]


def wait_for(predicate: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


# -- (a) the pure part: events -> steps --------------------------------------------------------


def test_a_synthetic_ledger_makes_one_step_per_evaluated_trial(tmp_path: Path) -> None:
    write_synthetic_run(tmp_path / "run", 300, workers=8)
    events = list(read_events(tmp_path / "run" / "ledger.jsonl"))
    evaluated = [e for e in events if isinstance(e, TrialFinished) and e.status in EVALUATED_STATUSES]
    steps = steps_of(events)
    assert [s.step for s in steps] == list(range(1, len(evaluated) + 1))
    assert [s.trial for s in steps] == [e.trial for e in evaluated]
    assert [s.metric for s in steps] == [e.metric if e.status == "ok" else None for e in evaluated]
    bests = [s.best_so_far for s in steps if s.best_so_far is not None]
    assert bests == sorted(bests, reverse=True)  # minimized: never worse than before
    assert bests[-1] == min(e.metric for e in evaluated if e.metric is not None)
    assert all(s.worker and s.hardware and s.status in EVALUATED_STATUSES for s in steps)
    maker = StepMaker()
    changes = [c for e in events for c in maker.feed(e) if not isinstance(c, TrackedStep)]
    accepted = [e for e in events if isinstance(e, Judged) and e.verdict == "accepted"]
    assert [c.trial for c in changes] == [e.trial for e in accepted]
    assert [c.commit for c in changes] == [e.best_commit for e in accepted]
    assert all(a.commit == b.parent for a, b in zip(changes, changes[1:], strict=False))  # each on the best before it


def test_params_are_dotted_keys_cut_to_mlflows_limit() -> None:
    flat = flat_params({"name": "q", "target": {"metric": {"name": "score"}, "run": "x" * 900,
                                                "editable": ["a.py"], "env": {}}})
    assert flat == {"name": "q", "target.metric.name": "score", "target.run": "x" * 497 + "...",
                    "target.editable": '["a.py"]', "target.env": "{}"}
    first = RunStarted(commit="c" * 40, tree="t" * 40, ts=12.5)
    assert run_key(first) == run_key(first.model_copy()) != run_key(first.model_copy(update={"ts": 13.0}))


def test_tracking_config_and_its_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(QUADRATIC, {"tracking.kind": "mlflow"})
    assert config.tracking == TrackingSpec(kind="mlflow")
    with pytest.raises(ConfigError, match=r"--set: key 'tracking.kind': Input should be 'mlflow' or 'wandb'"):
        load_config(QUADRATIC, settings=["tracking.kind=neptune"])
    assert tracking_problems(config, {}) == []
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    [problem] = tracking_problems(config, {})
    assert problem.line("q.yaml") == ("q.yaml: tracking.kind: mlflow is not installed here; pip install "
                                      "'autoresearch-swarm[mlflow]' (or set tracking.kind: null)")
    monkeypatch.undo()
    online = load_config(QUADRATIC, {"tracking.kind": "wandb", "tracking.mode": "online"})
    [problem] = tracking_problems(online, {})
    assert problem.key == "tracking.mode" and "WANDB_API_KEY" in problem.message
    assert tracking_problems(online, {"WANDB_API_KEY": "k"}) == []
    assert how_to_look(config.tracking, Path("/r")) == "mlflow ui --backend-store-uri sqlite:////r/mlflow.db"


# -- reading the trackers back ------------------------------------------------------------------


def mlflow_run(uri: str, experiment: str = "quadratic") -> tuple[Any, str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(found) == 1, "one tracker run per swarm run, found again on resume"
    return client, found[0].info.run_id


def assert_mlflow_holds_the_ledger(run_dir: Path, uri: str | None = None, report: bool = True) -> str:
    client, run_id = mlflow_run(uri or default_uri(run_dir))
    steps = ledger_steps(run_dir)
    assert steps
    for name in SHOWN:
        held = sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))
        assert held == expected(steps, name), name  # every step once, the ledger's value
    artifacts = Path(client.download_artifacts(run_id, "", str(run_dir / "downloaded")))
    rows = [json.loads(line) for f in sorted((artifacts / "trials").glob("*.jsonl"))
            for line in f.read_text().splitlines()]
    assert [(r["step"], r["trial"], r["status"], r["worker"]) for r in rows] == [
        (s.step, s.trial, s.status, s.worker) for s in steps]
    accepted = [e.trial for e in read_events(run_dir / "ledger.jsonl")
                if isinstance(e, Judged) and e.verdict == "accepted"]
    assert sorted(p.stem for p in (artifacts / "changes").glob("*.diff")) == sorted(accepted)
    assert all("diff --git" in p.read_text() for p in (artifacts / "changes").glob("*.diff"))
    if report:
        assert (artifacts / "report" / "report.md").exists() and (artifacts / "report" / "progress.png").exists()
    params = client.get_run(run_id).data.params
    assert params["target.metric.name"] == "score" and params["name"] == "quadratic"
    return run_id


def wandb_history(run_dir: Path) -> list[dict[str, Any]]:
    """Every history record of the run's offline files (each session writes one), in order."""
    from wandb.proto import wandb_internal_pb2

    found = []
    for path in sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb")):
        for raw in _leveldb_records(path.read_bytes()):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(raw)
            if record.WhichOneof("record_type") == "history":
                found.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                              for item in record.history.item})
    return found


def _leveldb_records(data: bytes, block: int = 32768) -> list[bytes]:
    """The records of a .wandb file (a 7-byte header, then LevelDB's log format)."""
    assert data[:4] == b":W&B"
    records, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:
            records.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            records.append(pending + chunk)
    return records


# -- (b) MLflow on a real swarm run, then resumed ---------------------------------------------


@pytest.fixture(scope="module")
def local_ray(ray_home: Path) -> Any:
    pytest.importorskip("ray")
    from tests.conftest import local_ray as start_local_ray

    with start_local_ray(ray_home, "swarm", 4):
        yield


def quadratic(max_trials: int, **tracking: Any) -> SwarmConfig:
    return load_config(QUADRATIC, {
        "target.repo": str(ROOT / "examples" / "quadratic"), "target.budget_s": 0.1, "workers.count": 2,
        "stop.max_trials": max_trials, "proposer.seed": 7, "acceptance.false_accept": 0.5,
        "acceptance.baseline_runs": 1, **{f"tracking.{k}": v for k, v in tracking.items()}})


@pytest.mark.ray
def test_mlflow_holds_the_ledgers_steps_after_a_resume_too(local_ray: Any, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    from swarm.shell.driver import RunOptions, run_swarm

    run_dir = tmp_path / "run"
    run_swarm(RunOptions(quadratic(6, kind="mlflow"), run_dir))
    first = assert_mlflow_holds_the_ledger(run_dir)
    before = len(ledger_steps(run_dir))
    logged_before = len((run_dir / "swarm.log").read_text())
    caplog.clear()
    caplog.set_level(logging.INFO, logger="coordinator.tracking")
    run_swarm(RunOptions(quadratic(10, kind="mlflow"), run_dir, resume=True))
    assert assert_mlflow_holds_the_ledger(run_dir) == first  # the same run, continued
    assert len(ledger_steps(run_dir)) > before
    # Whoever connected first in the resumed session (the coordinator's follower, or, when a loaded
    # machine ends the session before that thread got there, the driver's last catch-up) found
    # the first session's steps in the tracker, not an empty run.
    lines = (run_dir / "swarm.log").read_text()[logged_before:].splitlines()
    lines += [r.getMessage() for r in caplog.records if r.name == "coordinator.tracking"]
    held = [int(m.group(1)) for m in map(re.compile(r"tracking: connected; the tracker holds (\d+) steps").search,
                                          lines) if m]
    assert held and min(held) >= before, (held, before)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_tracker_that_is_down_never_stops_the_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from coordinator.trackers import upload_report

    run_dir = tmp_path / "run"
    config = quadratic(8, kind="mlflow", uri=f"http://127.0.0.1:{closed_port()}")
    with caplog.at_level("INFO", logger="coordinator.tracking"):
        drive(config, run_dir, resume=False)  # the run completes, the tracker never answering
        upload_report(config, run_dir, [])  # the driver's try once the session has ended
    finished = [e for e in read_events(run_dir / "ledger.jsonl") if isinstance(e, TrialFinished)]
    assert len(finished) >= 8
    # records, not caplog.text: the text's format (logger name or not) is the log config's
    said = [r.getMessage() for r in caplog.records if r.name == "coordinator.tracking"]
    assert any("tried again in 1 s, then caught up from the ledger" in line for line in said), said
    assert any(line.startswith("tracking: the report was not uploaded (") for line in said), said


# -- (d) down, then back: the backlog comes from the ledger -----------------------------------


class Flaky:
    """A real MLflow tracker whose calls fail while `down` is set (as a server that is away)."""

    def __init__(self, real: MlflowTracker, down: threading.Event) -> None:
        self.real, self.down = real, down

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)

        def call(*args: Any) -> Any:
            if self.down.is_set() and name != "finish":
                raise ConnectionError("the tracking server is away")
            return method(*args)
        return call


def test_a_tracker_back_from_down_catches_up_from_the_ledger(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    write_synthetic_run(tmp_path / "whole", 120, workers=4)
    lines = (tmp_path / "whole" / "ledger.jsonl").read_text().splitlines(keepends=True)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ledger = run_dir / "ledger.jsonl"
    ledger.write_text("".join(lines[:len(lines) // 3]))
    down = threading.Event()
    spec = TrackingSpec(kind="mlflow", experiment="quadratic")
    follower = Follower(lambda: Flaky(MlflowTracker(spec, run_dir, "quadratic"), down), ledger,  # type: ignore[arg-type, return-value]
                        run_dir / "repo", poll_s=0.1)
    with caplog.at_level("INFO", logger="coordinator.tracking"):
        follower.start()
        wait_for(lambda: follower.logged > 0)  # up: the first third is logged
        down.set()
        with ledger.open("a") as file:  # the run goes on while the tracker is away
            file.write("".join(lines[len(lines) // 3:2 * len(lines) // 3]))
        wait_for(lambda: follower.failures >= 2)
        down.clear()
        with ledger.open("a") as file:
            file.write("".join(lines[2 * len(lines) // 3:]))
        total = len(ledger_steps(run_dir))
        wait_for(lambda: follower.logged == total)
        follower.close()
    assert "ConnectionError: the tracking server is away; tried again in 1 s" in caplog.text
    client, run_id = mlflow_run(default_uri(run_dir))
    steps = ledger_steps(run_dir)
    for name in ("ok", "best_so_far", "score", "total_cost_usd"):
        assert sorted((m.step, m.value) for m in client.get_metric_history(run_id, name)) == expected(steps, name)
    assert client.get_run(run_id).info.status == "FINISHED"


# -- (c) W&B offline, in-process ----------------------------------------------------------------


@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    for name, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": tmp_path / "wandb-dir",
                        "WANDB_CACHE_DIR": tmp_path / "wandb-cache",
                        "WANDB_CONFIG_DIR": tmp_path / "wandb-config"}.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def drive(config: SwarmConfig, run_dir: Path, resume: bool) -> None:
    """The coordinator in-process, with simulated workers whose trials return at once."""
    sys.path.insert(0, str(ROOT / "bench"))
    from coordinator_capacity import Crafter, Timed, simulated_worker  # type: ignore[import-not-found]

    from coordinator.service import Coordinator

    coordinator = Coordinator(config, run_dir, f"s{int(resume)}", resume=resume)
    timed, crafter = Timed(coordinator), Crafter(Path(coordinator.pool.repo.working_dir))
    workers = [threading.Thread(target=simulated_worker, args=(f"w{i}", timed, crafter,
                                                               time.monotonic() + 120, i)) for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    crafter.repo.close()
    coordinator.end_session("done")
    coordinator.close()


def test_wandb_offline_holds_the_ledgers_steps_after_a_resume_too(tmp_path: Path, wandb_offline: None) -> None:
    run_dir = tmp_path / "run"
    drive(quadratic(10, kind="wandb"), run_dir, resume=False)
    drive(quadratic(18, kind="wandb"), run_dir, resume=True)
    history, steps = wandb_history(run_dir), ledger_steps(run_dir)
    assert len(steps) >= 18
    assert [h["_step"] for h in history] == [s.step for s in steps]  # every step once, in order
    for name in SHOWN:
        assert [(h["_step"], h[name]) for h in history if name in h] == expected(steps, name), name
    assert [(h["status"], h["worker"], h["hardware"]) for h in history] == [
        (s.status, s.worker, s.hardware) for s in steps]
    # one id; wandb adds "-1" to a second session's folder when both started in the same second
    ids = {re.sub(r"^offline-run-\d{8}_\d{6}-(.+?)(-\d+)?$", r"\1", p.name)
           for p in (run_dir / "wandb").glob("offline-run-*")}
    assert len(ids) == 1, ids
    assert (run_dir / "tracking" / "wandb.cursor").read_text().strip() == str(len(steps))


def test_track_flag_sets_tracking_kind() -> None:
    from swarm.shell.cli import _parser

    args = _parser().parse_args(["run", str(QUADRATIC), "--track", "wandb"])
    assert args.track == "wandb"
    with pytest.raises(SystemExit):
        _parser().parse_args(["run", str(QUADRATIC), "--track", "neptune"])
    assert load_config(QUADRATIC, {"tracking.kind": args.track}).tracking.kind == "wandb"


def test_a_resume_may_turn_tracking_on_and_the_tracker_gets_the_whole_ledger(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    drive(quadratic(6), run_dir, resume=False)
    drive(quadratic(10, kind="mlflow"), run_dir, resume=True)
    client, run_id = mlflow_run(default_uri(run_dir))
    steps = ledger_steps(run_dir)
    assert len(steps) >= 10
    for name in SHOWN:
        assert sorted((m.step, m.value) for m in client.get_metric_history(run_id, name)) == expected(steps, name)
