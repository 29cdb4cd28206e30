"""A "sessionstorm" tab in Locust's own web UI, through its supported extension points.

- the tab: ``template_args["extended_tabs"]`` / ``["extended_tables"]``, its rows sent with
  Locust's own ``/stats/requests`` poll as ``extended_stats`` (an ``after_request`` hook, as
  Locust's documented extend-web-UI example does): anomaly counts by code, the latest
  evidence, the current verdict and, once the run is checked, where its report is;
- links in Locust's "Download Data" tab (``extended_csv_files``): the run's report and a
  live page;
- a Flask blueprint under ``/sessionstorm``: ``/state`` (JSON, what the tab shows),
  ``/report`` (the run's report.html) and ``/`` (a small page that polls ``/state`` for as
  long as it is open, with a real link to the report; Locust's tab stops polling when the
  test stops, so it shows the verdict after a reload).

Counts come from the online checks: every finding becomes a Locust failure named
``CODE: explanation`` (sessionstorm.locust.users), and a request listener counts those
(one dict increment; successful requests return at once). On a master, whose workers'
requests fire no events here, counts come from Locust's aggregated failure table.

When the test stops (``-t`` reached, the Stop button) the run's history so far is checked
in a thread and its report rendered, so the verdict and the report are there while the
web UI is; at exit the plugin checks the run again as always (and that is the exit code).
"""
from __future__ import annotations

import re
import time
from collections import deque
from typing import Any

from sessionstorm.checker.catalogue import CATALOGUE

TAB = "sessionstorm"
EVIDENCE_KEPT = 8      # latest failures kept for the tab
CHECKED_EVIDENCE = 3   # the checker's evidence shown per code once the run is checked
CHECK_WAIT_S = 600.0  # at exit, how long to wait for a check still running from the test's stop
WORKER_FLUSH_S = 1.5  # on a master, workers flush their history when the test stops
STRUCTURE = [{"key": "what", "title": "What"}, {"key": "code", "title": "Code"},
             {"key": "count", "title": "Count"}, {"key": "detail", "title": "Detail"}]
_CODE_IN_ERROR = re.compile(r"\b([A-Z][A-Z_]+): ")
QUOTES = "\"')"


def _plural(n: int) -> str:
    return f"{n} anomal{'y' if n == 1 else 'ies'}"


class Live:
    """What the tab shows, kept up to date by Locust's events."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.counts: dict[str, int] = {}
        self.evidence: deque[dict[str, Any]] = deque(maxlen=EVIDENCE_KEPT)
        self.phase = "ready"                    # ready, running, checking, checked, finished
        self.checked: dict[str, Any] | None = None   # the check at the test's stop, or at exit
        self.check_error: str | None = None
        self._checking: Any = None              # the greenlet of a check in progress
        self._quitting = False
        from sessionstorm.locust.plugin import _state
        profile = getattr(_state.ctx, "profile", None)  # the header the op id travels in (the profile's)
        self.id_header = getattr(getattr(profile, "target", None), "request_id_header", None) or "X-Request-ID"

    # -- the hot path: every request of this process ------------------------------------
    def on_request(self, exception: Any = None, response: Any = None, name: str = "", **_: Any) -> None:
        if exception is None:
            return
        message = str(exception)
        code = message.partition(":")[0]
        if code not in CATALOGUE:
            return
        self.counts[code] = self.counts.get(code, 0) + 1
        self.evidence.append({"time": time.time(), "code": code, "name": name, "message": message,
                              "op_id": _op_id(response, self.id_header)})

    # -- the run's life -------------------------------------------------------------------
    def on_test_start(self, **_: Any) -> None:
        self.phase, self.checked, self.check_error = "running", None, None

    def on_test_stop(self, **_: Any) -> None:
        import gevent
        if self._run() is None or self._quitting:  # at exit (Ctrl-C stops the test too) the plugin checks
            return
        self.phase = "checking"
        self._checking = gevent.spawn(self._check)

    def _check(self) -> None:
        import gevent
        from locust.runners import MasterRunner

        from sessionstorm.run import check_and_report

        run = self._run()
        if isinstance(self.environment.runner, MasterRunner):
            gevent.sleep(WORKER_FLUSH_S)
        try:  # in a real thread: the web UI (and a master's heartbeats) keep being served meanwhile
            self.checked = gevent.get_hub().threadpool.apply(check_and_report, (run.dir,))
            self.check_error = None
        except Exception as e:  # noqa: BLE001 - shown in the tab; the check at exit decides the exit code
            self.check_error = f"{type(e).__name__}: {e}"
        if self.phase == "checking":
            self.phase = "checked"

    def on_quitting(self, **_: Any) -> None:
        """Runs before the plugin's own quitting listener (Locust fires quitting in reverse):
        a check started at the test's stop ends before the run's final check writes the same files."""
        self._quitting = True
        if self._checking is not None and not self._checking.dead:
            self._checking.join(timeout=CHECK_WAIT_S)

    @staticmethod
    def _run() -> Any:
        from sessionstorm.locust.plugin import _state
        run = _state.run
        return run if run is not None and run.dir is not None else None

    # -- what is shown ----------------------------------------------------------------------
    def live_counts(self) -> dict[str, int]:
        from locust.runners import MasterRunner
        runner = self.environment.runner
        if not isinstance(runner, MasterRunner):
            return dict(self.counts)
        counts: dict[str, int] = {}  # a master: the workers' failures, as Locust aggregated them
        for err in runner.stats.errors.values():
            m = _CODE_IN_ERROR.search(str(err.error))
            if m and m[1] in CATALOGUE:
                counts[m[1]] = counts.get(m[1], 0) + err.occurrences
        return counts

    def live_evidence(self) -> list[dict[str, Any]]:
        from locust.runners import MasterRunner
        runner = self.environment.runner
        if not isinstance(runner, MasterRunner):
            return list(reversed(self.evidence))
        out = []
        for err in sorted(runner.stats.errors.values(), key=lambda e: e.last_seen or 0, reverse=True):
            text = err.parse_error(err.error)  # e.g. CatchResponseError("CODE: explanation")
            m = _CODE_IN_ERROR.search(text)
            if m and m[1] in CATALOGUE:
                out.append({"time": err.last_seen, "code": m[1], "name": err.name, "op_id": None,
                            "message": f"{text[m.start(1):].rstrip(QUOTES)} (×{err.occurrences} on the workers)"})
        return out[:EVIDENCE_KEPT]

    def state(self) -> dict[str, Any]:
        run = self._run()
        counts = self.live_counts()
        total = sum(counts.values())
        final = getattr(run, "results", None) if run is not None else None
        checked = final or self.checked
        phase = "finished" if final else self.phase
        report = None
        if checked is not None and checked.get("report"):
            report = "./sessionstorm/report"
        if checked is not None:
            verdict = checked.get("verdict") or "UNKNOWN"
            found = sum(a.get("count", 0) for a in checked.get("anomalies") or ())
            line = f"{_plural(found)} found by the checker ({', '.join(checked.get('reasons') or ()) or 'no other reason'})" \
                if verdict == "UNKNOWN" else f"{_plural(found)} found by the checker"
            line += " (the run's final check)" if final else " (checked when the test stopped; checked again at exit)"
        elif phase == "checking":
            verdict, line = "CHECKING", f"the test stopped with {_plural(total)} seen live; checking the run…"
        elif phase == "running":
            verdict, line = "RUNNING", f"running — {_plural(total)} so far"
        else:
            verdict, line = "READY", "waiting for the test to start"
        codes = {a["code"]: a for a in (checked or {}).get("anomalies") or ()}
        anomalies = []
        for code in sorted(set(counts) | set(codes), key=lambda c: (-counts.get(c, 0), c)):
            severity, explanation = CATALOGUE.get(code, ("high", codes.get(code, {}).get("explanation", "")))
            anomalies.append({"code": code, "live": counts.get(code, 0),
                              "checked": codes[code].get("count") if code in codes else (0 if checked else None),
                              "severity": severity, "explanation": explanation,
                              "example": ((codes.get(code) or {}).get("evidence") or [{}])[0].get("detail")})
        checked_evidence = [{"code": code, "detail": ev.get("detail")}
                            for code, a in codes.items() for ev in (a.get("evidence") or ())[:CHECKED_EVIDENCE]]
        found = sum(a.get("count", 0) for a in codes.values()) if checked is not None else None
        return {"phase": phase, "verdict": verdict, "line": line, "live_total": total, "found": found,
                "anomalies": anomalies,
                "checked_evidence": checked_evidence,
                "evidence": self.live_evidence(), "report": report, "check_error": self.check_error,
                "run_dir": str(run.dir.path) if run is not None else None,
                "report_path": (checked or {}).get("report")}

    def rows(self) -> list[dict[str, Any]]:
        """The tab's table (Locust's extended table: plain text cells)."""
        s = self.state()
        count = s["live_total"] if s["found"] is None else s["found"]  # live, then the checker's
        rows = [{"what": "verdict", "code": s["verdict"], "count": count, "detail": s["line"]}]
        for a in s["anomalies"]:
            checked = "" if a["checked"] is None else f"; the checker found {a['checked']}"
            rows.append({"what": "anomaly", "code": a["code"], "count": a["live"],
                         "detail": f"{a['severity']}: {a['explanation']}{checked}"})
        for ev in s["checked_evidence"]:
            rows.append({"what": "evidence (checker)", "code": ev["code"], "count": "", "detail": ev["detail"]})
        for ev in s["evidence"]:
            when = time.strftime("%H:%M:%S", time.localtime(ev["time"])) if ev.get("time") else ""
            op = f" op {ev['op_id']}" if ev.get("op_id") else ""
            said = "" if ev["message"] == f"{ev['code']}: {CATALOGUE[ev['code']][1]}" else f": {ev['message']}"
            rows.append({"what": "evidence (live)", "code": ev["code"], "count": "",
                         "detail": f"{when} {ev['name']}{op}{said}".strip()})
        if s["check_error"]:
            rows.append({"what": "check", "code": "ERROR", "count": "", "detail": s["check_error"]})
        if s["report"]:
            rows.append({"what": "report", "code": "", "count": "",
                         "detail": f"{s['report_path']} — open it from Download Data, or at /sessionstorm/report"})
        rows.append({"what": "live page", "code": "", "count": "",
                     "detail": "/sessionstorm/ keeps updating after the test stops (this tab does after a reload)"})
        return rows


def _op_id(response: Any, header: str) -> str | None:
    """The op id the request carried as its request id (sent by every sessionstorm request)."""
    headers = getattr(getattr(response, "request", None), "headers", None)
    if not hasattr(headers, "get"):
        return None
    value = headers.get(header) or headers.get(header.lower())
    return str(value) if value else None


def attach(environment: Any) -> Live | None:
    """Add the tab, routes and listeners to Locust's web UI; nothing when there is none (--headless)."""
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None:
        return None
    import json

    from flask import Blueprint, Response, jsonify, request, send_file

    live = Live(environment)
    events = environment.events
    events.request.add_listener(live.on_request)
    events.test_start.add_listener(live.on_test_start)
    events.test_stop.add_listener(live.on_test_stop)
    events.quitting.add_listener(live.on_quitting)

    base = (getattr(environment.parsed_options, "web_base_path", None) or "").rstrip("/")
    bp = Blueprint(TAB, __name__, url_prefix=f"{base}/{TAB}")
    auth = web_ui.auth_required_if_enabled

    @bp.route("/state")
    @auth
    def state() -> Response:
        return jsonify(live.state())

    @bp.route("/report")
    @auth
    def report() -> Response:
        path = live.state()["report_path"]
        if not path:
            return Response("no report yet: the run is checked when the test stops\n", 404, mimetype="text/plain")
        return send_file(path, mimetype="text/html", max_age=0)

    @bp.route("/")
    @auth
    def page() -> Response:
        return Response(PAGE, mimetype="text/html")

    web_ui.app.register_blueprint(bp)

    @web_ui.app.after_request
    def extend_stats(response: Response) -> Response:
        """Locust's tab data: our rows ride along its /stats/requests poll (a fresh response:
        Locust memoizes the one it built)."""
        if not request.path.endswith("/stats/requests") or response.status_code != 200 or not response.is_json:
            return response
        data = dict(response.get_json())
        data["extended_stats"] = [*[e for e in data.get("extended_stats") or () if e.get("key") != TAB],
                                  {"key": TAB, "data": live.rows()}]
        return Response(json.dumps(data), response.status_code, mimetype="application/json")

    args = web_ui.template_args
    args["extended_tabs"] = [*args.get("extended_tabs", []), {"title": TAB, "key": TAB}]
    args["extended_tables"] = [*args.get("extended_tables", []), {"key": TAB, "structure": STRUCTURE}]
    args["extended_csv_files"] = [*args.get("extended_csv_files", []),
                                  {"href": f"./{TAB}/report", "title": "sessionstorm: the run's report (report.html)"},
                                  {"href": f"./{TAB}/", "title": "sessionstorm: live anomalies and verdict"}]
    return live


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sessionstorm — live</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2330;background:#fafbfc}
h1{font-size:1.3rem;margin:0 0 1rem} .verdict{font-size:1.15rem;font-weight:600;padding:.6rem .9rem;border-radius:6px;
display:inline-block;background:#e8edf5} .CLEAN{background:#d9f2df;color:#175c2a} .ANOMALIES{background:#fbe0e0;color:#8a1c1c}
.UNKNOWN{background:#fff1cc;color:#6b4e00} table{border-collapse:collapse;margin:.6rem 0 1.4rem;min-width:40rem}
th,td{border-bottom:1px solid #dde2ea;padding:.35rem .7rem;text-align:left;vertical-align:top} th{background:#eef1f6}
td.n{text-align:right;font-variant-numeric:tabular-nums} code{font-size:.92em} .muted{color:#667}
</style></head><body>
<h1>sessionstorm — live</h1>
<p><span id="verdict" class="verdict">…</span> <span id="line"></span></p>
<p id="report"></p>
<h2>Anomalies by code</h2>
<table><thead><tr><th>Code</th><th>Seen live</th><th>Checker</th><th>Severity</th><th>What it means</th></tr></thead>
<tbody id="codes"><tr><td colspan="5" class="muted">none so far</td></tr></tbody></table>
<h2>Latest evidence (live)</h2>
<table><thead><tr><th>Time</th><th>Code</th><th>Operation</th><th>Request</th><th>Message</th></tr></thead>
<tbody id="evidence"><tr><td colspan="5" class="muted">none so far</td></tr></tbody></table>
<h2>The checker's evidence</h2>
<table><thead><tr><th>Code</th><th>Evidence</th></tr></thead>
<tbody id="checked"><tr><td colspan="2" class="muted">none so far</td></tr></tbody></table>
<p class="muted" id="run"></p>
<script>
function cell(tr, text, cls){const td=document.createElement("td");td.textContent=text==null?"":String(text);if(cls)td.className=cls;tr.appendChild(td);}
function fill(id, rows, cols){const body=document.getElementById(id);body.replaceChildren();
  if(!rows.length){const tr=document.createElement("tr");const td=document.createElement("td");td.colSpan=cols;td.className="muted";
    td.textContent="none so far";tr.appendChild(td);body.appendChild(tr);return;}
  for(const r of rows){const tr=document.createElement("tr");r.forEach(([t,c])=>cell(tr,t,c));body.appendChild(tr);}}
async function poll(){
  try{const s=await (await fetch("./state",{cache:"no-store"})).json();
    const v=document.getElementById("verdict");v.textContent=s.verdict;v.className="verdict "+s.verdict;
    document.getElementById("line").textContent=s.line+(s.check_error?" — check failed: "+s.check_error:"");
    const rep=document.getElementById("report");rep.replaceChildren();
    if(s.report){const a=document.createElement("a");a.href="./report";a.id="report-link";a.textContent="Open the run's report";
      rep.appendChild(a);rep.appendChild(document.createTextNode(" ("+s.report_path+")"));}
    fill("codes",s.anomalies.map(a=>[[a.code],[a.live,"n"],[a.checked,"n"],[a.severity],[a.explanation]]),5);
    fill("evidence",s.evidence.map(e=>[[e.time?new Date(e.time*1000).toLocaleTimeString():""],[e.code],[e.op_id||""],[e.name],[e.message]]),5);
    fill("checked",s.checked_evidence.map(e=>[[e.code],[e.detail]]),2);
    document.getElementById("run").textContent=s.run_dir?"run folder: "+s.run_dir:"";
  }catch(e){document.getElementById("line").textContent="(web UI not answering: "+e+")";}
}
poll();setInterval(poll,2000);
</script></body></html>
"""
