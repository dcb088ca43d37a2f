"""How fast the dashboard is on a run of 10,000 trials, in a real browser (Debian's headless
Chromium): time to first paint and to the chart drawn, the snapshot's size and the server's
time to build it, and each update's latency from the ledger's append to the page having
redrawn.

The run is a synthetic ledger (tests/synthetic_ledger.py, 16 workers). An update is what the
coordinator appends when a trial finishes: its trial_started, trial_finished and verdict
events, written in one append; its latency runs from just before the write (Python's clock)
to the end of the first chart redraw that shows it (the page's `window.__swarm.renderLog`,
the browser's clock: the same machine's), and to the headline showing the new trial count.

    .venv/bin/python bench/dashboard_latency.py                  # 10,000 trials, 20 updates
    .venv/bin/python bench/dashboard_latency.py --trials 1000 --updates 5
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from swarm.shell.dashboard.server import DashboardOptions, start_in_thread  # noqa: E402
from tests.synthetic_ledger import write_synthetic_run  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


def _finished_trial(number: int, ts: float) -> bytes:
    trial, commit = f"{number:05d}", hashlib.sha1(f"bench{number}".encode()).hexdigest()
    started = {"ts": ts, "event": "trial_started", "trial": trial, "kind": "candidate", "worker": "w3",
               "commit": commit, "tree": hashlib.sha1(commit.encode()).hexdigest(), "parent": "0" * 40,
               "hypothesis": f"X3 1.0 -> {number}", "session": "s1", "hardware": "cpu:synthetic", "node": "node3"}
    finished = {"ts": ts + 0.001, "event": "trial_finished", "trial": trial, "status": "ok", "metric": 0.5,
                "metrics": {"score": 0.5}, "seconds": 60.0, "hardware": "cpu:synthetic", "reason": ""}
    verdict = {"ts": ts + 0.002, "event": "verdict", "trial": trial, "verdict": "discard", "reference": 0.25,
               "required": 0.04, "improvement": -0.25, "runs": 1}
    return "".join(json.dumps(e) + "\n" for e in (started, finished, verdict)).encode()


_TIMES = """() => ({
  paint: Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, e.startTime])),
  drawn: window.__swarm.firstRender,
  snap: (performance.getEntriesByType('resource').find(e => e.name.includes('/api/snapshot')) || {}).responseEnd,
})"""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--loads", type=int, default=3, help="page loads timed (median)")
    args = parser.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    write_synthetic_run(run_dir, args.trials)
    ledger = run_dir / "ledger.jsonl"
    began = time.perf_counter()
    running = start_in_thread(DashboardOptions(run_dir, port=0))
    startup_s = time.perf_counter() - began
    hub = running.hub
    trials = len(hub.follower.state.trials)
    build = []
    for _ in range(3):
        hub._snapshot = None  # built afresh each time
        began = time.perf_counter()
        snapshot = hub.snapshot()
        build.append(time.perf_counter() - began)
    rows: list[tuple[str, str]] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        fp, fcp, drawn, fetched = [], [], [], []
        for _ in range(args.loads):
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(running.url)
            page.wait_for_function("() => window.__swarm.firstRender != null", timeout=60_000)
            times: dict[str, Any] = page.evaluate(_TIMES)
            fp.append(times["paint"]["first-paint"])
            fcp.append(times["paint"]["first-contentful-paint"])
            drawn.append(times["drawn"])
            fetched.append(times["snap"] or 0.0)
            page.close()
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(running.url)
        page.wait_for_function("() => window.__swarm.firstRender != null && window.__swarm.lastPanels", timeout=60_000)
        chart_ms, headline_ms = [], []
        number = trials
        for _ in range(args.updates):
            number += 1
            page.wait_for_timeout(300)
            before = time.time() * 1000
            with open(ledger, "ab") as file:
                file.write(_finished_trial(number, time.time()))
            page.wait_for_function(f"() => window.__swarm.lastPanels.trialsDone >= {number}", timeout=30_000,
                                   polling="raf")
            shown = page.evaluate(f"() => [window.__swarm.renderLog.find(r => r[0] >= {number})[1], "
                                  "window.__swarm.lastPanels.at]")
            chart_ms.append(shown[0] - before)
            headline_ms.append(shown[1] - before)
        browser.close()
    running.stop()
    rows = [
        ("trials in the ledger", f"{trials:,}"),
        ("server start (replaying the ledger)", f"{startup_s:.2f} s"),
        ("snapshot JSON", f"{len(snapshot) / 1024:.0f} KiB"),
        ("snapshot built by the server (median of 3)", f"{1000 * statistics.median(build):.0f} ms"),
        (f"first paint (median of {args.loads} loads)", f"{statistics.median(fp):.0f} ms"),
        ("first contentful paint", f"{statistics.median(fcp):.0f} ms"),
        ("snapshot received (responseEnd)", f"{statistics.median(fetched):.0f} ms"),
        (f"chart drawn with all {trials:,} trials", f"{statistics.median(drawn):.0f} ms"),
        (f"update -> chart redrawn, median / p90 of {len(chart_ms)}",
         f"{statistics.median(chart_ms):.0f} / {_pct(chart_ms, 0.9):.0f} ms"),
        ("update -> headline shows it, median / p90",
         f"{statistics.median(headline_ms):.0f} / {_pct(headline_ms, 0.9):.0f} ms"),
    ]
    print(f"dashboard at {trials:,} trials; python {platform.python_version()}, chromium headless")
    print("| measure | figure |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print("chart ms:", " ".join(f"{v:.0f}" for v in chart_ms))
    print("headline ms:", " ".join(f"{v:.0f}" for v in headline_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
