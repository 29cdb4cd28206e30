"""The "sessionstorm" tab in Locust's own web UI, in a real Chromium (Debian's, through Playwright).

`locust -f locustfiles/shared_key.py` with its web UI on 127.0.0.1 and a free port, zero-setup
(the embedded stack), autostarted for 12 s. With the no-request-id bug the tab shows CROSSTALK
counted live, then the verdict and a working link to the report; the clean twin shows none.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import portpicker
import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_S = 12


def _until(predicate, timeout: float, what: str, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def _state(base: str) -> dict:
    with urllib.request.urlopen(f"{base}/sessionstorm/state", timeout=5) as r:
        return json.loads(r.read())


def _answers(base: str) -> bool:
    try:
        _state(base)
    except OSError:
        return False
    return True


def _tab_rows(page) -> list[list[str]]:
    """The cells of every row of the tab's table, as the user sees them."""
    return page.evaluate("""() => [...document.querySelectorAll('table tbody tr')]
        .map(tr => [...tr.querySelectorAll('td')].map(td => td.innerText.trim()))""")


def _row(rows: list[list[str]], what: str, code: str | None = None) -> list[str] | None:
    return next((r for r in rows if len(r) == 4 and r[0] == what and (code is None or r[1] == code)), None)


@pytest.fixture(scope="module")
def chromium():
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    from sessionstorm.report.browser import FLAGS, chromium_path

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=FLAGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def locust_web(tmp_path):
    """`locust` with its web UI, autostarted; yields (base URL, process, output file); stops it at the end."""
    procs = []

    def start(bugs: str):
        port = portpicker.pick_unused_port()
        out = tmp_path / "locust.out"
        env = {**os.environ, "SESSIONSTORM_TARGET_BUGS": bugs}
        with open(out, "wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "shared_key.py"),
                 "--web-port", str(port), "--autostart", "-u", "10", "-r", "10", "-t", f"{RUN_S}s",
                 "--reports-dir", str(tmp_path / "reports")],
                stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        procs.append(proc)
        # Closed doors: the UI listens on loopback by default (no other address is ever tried here)
        m = _until(lambda: re.search(rb"Starting web interface at (http://\S+?)[,\s]", out.read_bytes()) or
                   (proc.poll() is not None and pytest.fail(out.read_text()[-3000:])), 60, "the web UI")
        url = m[1].decode()
        assert url == f"http://127.0.0.1:{port}", url
        # Locust prints the URL first, then starts the stack (init), then serves
        _until(lambda: _answers(url) or (proc.poll() is not None and pytest.fail(out.read_text()[-3000:])),
               120, "the web UI to answer")
        return url, proc, out

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.mark.parametrize(("bugs", "code"), [("no-request-id", "CROSSTALK"), ("", None)], ids=["crosstalk", "clean"])
def test_tab_shows_live_anomalies_the_verdict_and_the_report(locust_web, chromium, tmp_path, bugs, code):
    base, proc, out = locust_web(bugs)
    page = chromium.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{base}/?tab=sessionstorm", wait_until="load")
    page.get_by_role("tab", name="sessionstorm").wait_for(timeout=60_000)

    # live, while the test runs: the verdict row says "running", the anomaly rows count the online findings
    def live_rows():
        rows = _tab_rows(page)
        v = _row(rows, "verdict")
        return rows if v and v[1] == "RUNNING" and (code is None or _row(rows, "anomaly", code)) else None
    rows = _until(live_rows, 60, "the tab's live rows")
    assert _state(base)["phase"] == "running"
    verdict = _row(rows, "verdict")
    if code:
        count = int(_row(rows, "anomaly", code)[2])
        assert count > 0 and re.fullmatch(r"running — \d+ anomal(y|ies) so far", verdict[3]), rows
        assert _row(rows, "evidence (live)", code) is not None, rows
        page.screenshot(path=str(tmp_path / "tab-live.png"))
    else:
        assert verdict[2] == "0" and verdict[3] == "running — 0 anomalies so far", rows
        assert _row(rows, "anomaly") is None, rows

    # the test stops at -t: the run is checked, the web UI stays up
    st = _until(lambda: (s := _state(base))["phase"] == "checked" and s, RUN_S + 90, "the check at the test's stop")
    assert st["verdict"] == ("ANOMALIES" if code else "CLEAN"), st
    page.close()  # Locust's tab stops polling with the test: the end state shows on a new visit (or a reload)
    page = chromium.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{base}/?tab=sessionstorm", wait_until="load")
    rows = _until(lambda: (r := _tab_rows(page)) and _row(r, "verdict") and _row(r, "verdict")[1] != "RUNNING" and r,
                  30, "the tab's final rows")
    assert _row(rows, "verdict")[1] == st["verdict"], rows
    if code:
        assert int(_row(rows, "anomaly", code)[2]) > 0 and _row(rows, "evidence (checker)", code), rows
    else:
        assert _row(rows, "anomaly") is None and _row(rows, "verdict")[2] == "0", rows
    assert _row(rows, "report") is not None, rows
    page.locator("header").get_by_text("STOPPED").wait_for(timeout=15_000)  # Locust's own status agrees
    page.screenshot(path=str(tmp_path / "tab-end.png"))

    # the report link (Locust's Download Data tab) opens the run's report.html
    page.goto(f"{base}/?tab=reports", wait_until="load")
    link = page.get_by_role("link", name="sessionstorm: the run's report (report.html)")
    link.wait_for(timeout=30_000)
    link.click()
    page.wait_for_load_state("load")
    assert page.url == f"{base}/sessionstorm/report"
    text = page.inner_text("body")
    if code:
        assert "ANOMALIES FOUND" in text and code in text
    else:
        assert "CLEAN" in text and "ANOMALIES FOUND" not in text

    # the live page keeps polling after the test stopped, and links the report too
    page.goto(f"{base}/sessionstorm/", wait_until="load")
    page.locator("#report-link").wait_for(timeout=30_000)
    assert page.inner_text("#verdict") == st["verdict"]
    page.screenshot(path=str(tmp_path / "live-page.png"), full_page=True)
    page.locator("#report-link").click()
    page.wait_for_load_state("load")
    assert ("ANOMALIES FOUND" if code else "CLEAN") in page.inner_text("body")
    page.close()

    # at exit the run is checked again as always: the exit code agrees with the tab
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=90) == (1 if code else 0), out.read_text()[-3000:]
    results = json.loads((tmp_path / "reports" / "latest" / "results.json").read_text())
    assert ({a["code"] for a in results["anomalies"]} == {code}) if code else results["valid"] is True
