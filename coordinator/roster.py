"""Who works for the run, where, and whom the coordinator trusts. No Ray, no git.

Two sources: the driver says where it placed each worker (`place`, `set_live`), and each
worker says where it runs on every call. The driver's word decides trust and hardware class:
a volunteer's worker runs code its owner may have changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from coordinator.state import VOLUNTEER_CLASS
from swarm.core.values import Placement, WorkerSite

__all__ = ["Roster", "Seat"]


@dataclass(frozen=True)
class Seat:
    """A worker as its trials are recorded: its hardware class (a volunteer's is a class of
    its own) and whether it volunteers."""

    hardware: str
    volunteer: bool


class Roster:
    def __init__(self) -> None:
        self.live: dict[str, WorkerSite] = {}  # worker -> where it runs, in its own words
        self.placement: dict[str, Placement] = {}  # worker -> where the driver placed it
        # Once a driver places workers, a worker it has not placed is not trusted: it may be
        # a volunteer whose placement has not arrived yet (or was lost with a restart).
        self.driver_places = False
        self.driver_seen = time.monotonic()
        self.stopped: set[str] = set()  # workers told to stop in this session: they are leaving

    def heard_from(self, worker: str, site: WorkerSite | None) -> None:
        """A worker called; it says where it runs on every call, so a restarted coordinator
        re-learns who works where."""
        self.live[worker] = site if site is not None else self.live.get(worker, WorkerSite())

    def unplaced(self, worker: str) -> bool:
        """The driver places workers, and has not told where this one is (yet)."""
        return self.driver_places and worker not in self.placement

    def sent_home(self, worker: str) -> None:
        """Told to stop: gone, and owed confirmations must not wait for it."""
        self.live.pop(worker, None)
        self.stopped.add(worker)

    def lost(self, worker: str) -> None:
        self.live.pop(worker, None)

    def place(self, worker: str, placement: Placement) -> None:
        """The driver says where it is about to start a worker, before the worker can ask for
        work: until then the coordinator would not know whether it is a volunteer."""
        self.driver_places = True
        self.placement[worker] = placement
        self.driver_seen = time.monotonic()

    def set_live(self, placements: dict[str, Placement]) -> None:
        """The driver's running workers, with where it placed each (a restarted coordinator
        forgot its own)."""
        self.driver_places = True
        self.placement = {w: p for w, p in placements.items() if w not in self.stopped}
        self.live = {w: self.live.get(w, WorkerSite()) for w in self.placement}
        self.driver_seen = time.monotonic()

    def driver_silence_s(self) -> float:
        """Seconds since the driver last said which workers run: a driver killed outright
        leaves its (detached) coordinator behind, and a new driver may take the run over."""
        return time.monotonic() - self.driver_seen

    def seat(self, worker: str) -> Seat:
        placed = self.placement.get(worker, Placement())
        hardware = placed.hardware or self.live.get(worker, WorkerSite()).hardware
        volunteer = placed.volunteer or self.unplaced(worker)
        return Seat(VOLUNTEER_CLASS + hardware if volunteer else hardware, volunteer)

    def node_of(self, worker: str) -> str:
        """Where the worker runs, for the report's colours: the driver's node id, else its host."""
        return self.placement.get(worker, Placement()).node or self.live.get(worker, WorkerSite()).host

    def volunteers(self) -> frozenset[str]:
        return frozenset(w for w, placed in self.placement.items() if placed.volunteer)

    def sites(self) -> dict[str, tuple[WorkerSite, Placement]]:
        """Every live worker with what it and the driver said of where it runs."""
        return {w: (site, self.placement.get(w, Placement())) for w, site in self.live.items()}
