"""The dashboard in a real browser (Debian's headless Chromium): it follows a real run live,
without a reload; ledger text renders as text; a click shows a trial's real diff."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("no /usr/bin/chromium here (Debian's chromium package; `make test` installs it)",
                allow_module_level=True)
ray = pytest.importorskip("ray")
sync_api = pytest.importorskip("playwright.sync_api")

from swarm.shell.dashboard.server import DashboardOptions, Running, start_in_thread  # noqa: E402
from swarm.shell.driver import RunOptions, run_swarm  # noqa: E402
from tests.conftest import local_ray as start_local_ray  # noqa: E402
from tests.synthetic_ledger import write_synthetic_run  # noqa: E402
from tests.test_swarm_ray import quadratic  # noqa: E402

pytestmark = pytest.mark.ray

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


@pytest.fixture(scope="module")
def local_ray(ray_home: Path) -> Iterator[None]:
    with start_local_ray(ray_home, "swarm", 4):
        yield


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


def _shown(page: Any) -> dict[str, Any]:
    return page.evaluate("() => ({points: window.__swarm.count(), renders: window.__swarm.renders, "
                         "trials: document.getElementById('trials').textContent, marker: window.__marker})")


def test_the_page_follows_a_real_run_and_shows_a_trials_diff(local_ray: None, browser: Any, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # as `swarm run --dashboard` starts it (the ledger is not there yet), and asking the live
    # coordinator too, as `--address` makes it (Ray is connected in this process already)
    dashboard = start_in_thread(DashboardOptions(run_dir, port=0, wait_for_run=True, address="auto"))
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(status=run_swarm(
        RunOptions(quadratic(max_trials=18, workers=2), run_dir))))
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        thread.start()
        page.goto(dashboard.url)
        page.evaluate("() => { window.__marker = 'no reload'; }")
        page.wait_for_function("() => window.__swarm.count() >= 3 && "
                               "Number(document.getElementById('trials').textContent) >= 2", timeout=120_000)
        early = _shown(page)
        page.wait_for_function(f"() => window.__swarm.count() >= {early['points'] + 4} && "
                               f"Number(document.getElementById('trials').textContent) > {early['trials']}",
                               timeout=120_000)
        page.wait_for_function("() => document.getElementById('workers').textContent.includes('host=')",
                               timeout=60_000)  # where each worker runs: the live coordinator knows
        later = _shown(page)
        assert later["marker"] == "no reload"  # the same page, updated in place
        assert later["renders"] > early["renders"]
        thread.join(timeout=180)
        assert "status" in outcome, "the run did not finish"
        done = outcome["status"].trials_done
        page.wait_for_function(f"() => document.getElementById('trials').textContent === '{done}'", timeout=30_000)
        assert _shown(page)["marker"] == "no reload"
        # hover a candidate for its trial, click it for its diff (from the run's repo/)
        candidate = _candidate(dashboard)
        box = page.locator("#chart").bounding_box()
        at = page.evaluate(f"() => window.__swarm.at('{candidate}')")
        page.mouse.move(box["x"] + at["x"], box["y"] + at["y"])
        page.wait_for_selector("#tip:not([hidden])")
        assert f"trial {candidate}" in page.locator("#tip").text_content()
        page.mouse.click(box["x"] + at["x"], box["y"] + at["y"])
        page.wait_for_selector("#panel-diff .hunk", timeout=10_000)
        diff = page.locator("#panel-diff").text_content()
        assert "train.py" in diff and page.locator("#panel-diff .add").count() >= 1
        assert page.locator("#panel-title").text_content() == f"trial {candidate}"
    finally:
        page.close()
        dashboard.stop()
        thread.join(timeout=180)


def _candidate(dashboard: Running) -> str:
    state = dashboard.hub.follower.state
    return next(t.id for t in state.trials.values() if t.kind == "candidate" and t.status == "ok")


def test_ledger_text_is_shown_as_text_never_run(browser: Any, tmp_path: Path) -> None:
    summary = write_synthetic_run(tmp_path, 40, workers=4)
    accepted = summary.accepted[0]
    ledger = tmp_path / "ledger.jsonl"
    events = [json.loads(line) for line in ledger.read_text().splitlines()]
    for event in events:
        if event.get("trial") == accepted and event["event"] == "trial_started":
            event["hypothesis"] = XSS
        if event.get("event") == "trial_finished" and event["status"] != "ok":
            event["reason"] = XSS
    ledger.write_text("".join(json.dumps(e) + "\n" for e in events))
    dashboard = start_in_thread(DashboardOptions(tmp_path, port=0))
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(dashboard.url)
        page.wait_for_function("() => window.__swarm.count() > 0")
        page.wait_for_selector("#changes tbody td")
        assert XSS in page.locator("#changes tbody").text_content()
        page.evaluate(f"() => window.__swarm.at('{accepted}')")
        box = page.locator("#chart").bounding_box()
        at = page.evaluate(f"() => window.__swarm.at('{accepted}')")
        page.mouse.click(box["x"] + at["x"], box["y"] + at["y"])
        page.wait_for_function(f"() => document.getElementById('panel-hypothesis').textContent === {json.dumps(XSS)}")
        assert page.evaluate("() => window.__xss") is None
        assert page.locator("img").count() == 0 and page.locator("body script").count() == 0
    finally:
        page.close()
        dashboard.stop()
