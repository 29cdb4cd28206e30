"""report.html in a real browser (headless Debian Chromium): evidence visible, nothing external, text stays text."""
from __future__ import annotations

import pytest

from sessionstorm.checker import check_run
from sessionstorm.history import HistoryWriter
from sessionstorm.report import render_report
from sessionstorm.report.browser import browser
from sessionstorm.rundir import RunDir


@pytest.fixture(scope="module")
def chromium():
    with browser() as b:
        yield b


def _assert_self_contained(visit):
    assert visit.external() == [], f"the page fetched {visit.external()}"
    assert visit.console == [], f"console errors (CSP violations?): {visit.console}"
    assert visit.scripts == 0


def test_crosstalk_report_shows_the_evidence_side_by_side(checked_run, chromium):
    run, results = checked_run("shared_key", bugs="no-request-id", rounds=4)
    crosstalk = next((a for a in results["anomalies"] if a["code"] == "CROSSTALK"), None)
    assert crosstalk is not None, f"the no-request-id target produced no crosstalk: {results['anomalies']}"
    page = render_report(run)
    visit = chromium.visit(page, screenshot=run / "report.png")
    _assert_self_contained(visit)
    assert "ANOMALIES FOUND" in visit.text and "CROSSTALK" in visit.text
    ev = crosstalk["evidence"][0]
    victim, owner = ev["op_details"]
    for text in (ev["detail"], victim["id"], owner["id"], *owner["canaries_sent"], "received the reply", "whose answer it was"):
        assert text in visit.text, f"{text!r} is not on the page"
    assert "By key" in visit.text and "Latency percentiles" in visit.text  # timeline and charts drawn
    assert (run / "report.png").stat().st_size > 10_000


def test_clean_run_report_says_clean(checked_run, chromium):
    run, results = checked_run("shared_key")
    assert results["valid"] is True, results["anomalies"]
    visit = chromium.visit(render_report(run))
    _assert_self_contained(visit)
    assert "CLEAN" in visit.text and "ANOMALIES FOUND" not in visit.text
    assert "No anomaly" in visit.text


def test_html_in_a_reply_renders_as_text(tmp_path, chromium):
    """A reply carrying markup (crosstalk evidence, so it is on the page) must not run or load anything."""
    run = RunDir.create("hostile", root=tmp_path)
    evil = '<script>document.title="pwned"</script><img src="http://127.0.0.1:9/x.png"><b id="bold">bold</b>'
    a, b = "SSC-AAAA-AAAA-AAAA-AAAA", "SSC-BBBB-BBBB-BBBB-BBBB"
    with HistoryWriter(run.history_path("t"), process="t") as h:
        for oid, sent, seen, t in (("A", a, b, 0.0), ("B", b, b, 0.05)):
            h.op(id=oid, kind="chat", flavor="gateway", outcome="ok", status=200, key="fp_k", session_seen="s1",
                 invoke_wall=1000 + t, complete_wall=1000.2 + t, canaries_sent=[sent], canaries_seen=[seen],
                 model_asked="m", model_served="m", prompt_excerpt=f"{sent} {evil}", reply_excerpt=f"{seen} {evil}")
    results = check_run(run)
    assert [x["code"] for x in results["anomalies"]] == ["CROSSTALK"]
    visit = chromium.visit(render_report(run))
    _assert_self_contained(visit)
    assert '<script>document.title="pwned"</script>' in visit.text  # shown, as text
    assert '<b id="bold">bold</b>' in visit.text


def test_the_external_request_check_can_fail(chromium):
    """The detector above is real: a page that loads from the network is caught."""
    visit = chromium.visit(None, html='<img src="http://127.0.0.1:9/x.png"><script>1</script>')
    assert visit.external() == ["http://127.0.0.1:9/x.png"] and visit.scripts == 1
