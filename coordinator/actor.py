"""The coordinator as a Ray actor: a thin shell over `coordinator.service.Coordinator`.

num_cpus=0: it mostly waits on workers. max_restarts=-1: if its process dies, Ray starts it
again with the same arguments and it rebuilds its state from the run directory's ledger.
"""

from __future__ import annotations

import logging
from pathlib import Path

import ray

from coordinator.service import Coordinator
from coordinator.status import RunStatus
from swarm.core.config import SwarmConfig
from swarm.core.errors import SwarmError
from swarm.core.values import (
    Admission, CandidateInfo, ContextFile, Cost, Placement, TrialOutcome, WorkerSite, WorkUnit,
)

__all__ = ["CoordinatorActor"]


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class CoordinatorActor:
    def __init__(self, config: SwarmConfig, run_dir: str, session: str, resume: bool) -> None:
        _log_to(Path(run_dir) / "swarm.log")
        self._error: str | None = None
        try:
            self._service = Coordinator(config, Path(run_dir), session, resume)
        except SwarmError as exc:  # told to the driver by ready(), as one line
            self._error = str(exc)

    def ready(self) -> str | None:
        """None when the run is open; otherwise why it could not be opened."""
        return self._error

    def hello(self, worker_id: str, site: WorkerSite) -> dict[str, str]:
        return self._service.hello(worker_id, site)

    def briefing(self) -> tuple[ContextFile, ...]:
        return self._service.briefing()

    def next_work(self, worker_id: str, have: str | None, site: WorkerSite | None = None) -> WorkUnit:
        return self._service.next_work(worker_id, have, site)

    def begin_candidate(self, info: CandidateInfo) -> Admission:
        return self._service.begin_candidate(info)

    def best_now(self, worker_id: str, have: str | None) -> tuple[str, bytes | None]:
        return self._service.best_now(worker_id, have)

    def report(self, outcome: TrialOutcome) -> None:
        self._service.report(outcome)

    def proposal_failed(self, worker_id: str, reason: str, cost: Cost = Cost()) -> None:
        self._service.proposal_failed(worker_id, reason, cost)

    def worker_lost(self, worker_id: str, reason: str) -> None:
        self._service.worker_lost(worker_id, reason)

    def request_stop(self) -> None:
        self._service.request_stop()

    def place(self, worker_id: str, placement: Placement) -> None:
        self._service.place(worker_id, placement)

    def set_live(self, placements: dict[str, Placement]) -> None:
        self._service.set_live(placements)

    def end_session(self, reason: str) -> None:
        self._service.end_session(reason)

    def node_id(self) -> str:
        """The node it runs on (the head, where the run directory is)."""
        return str(ray.get_runtime_context().get_node_id())

    def driver_silence_s(self) -> float:
        return self._service.driver_silence_s()

    def status(self) -> RunStatus:
        return self._service.status()


def _log_to(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s coordinator %(message)s"))
    root = logging.getLogger("coordinator")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
