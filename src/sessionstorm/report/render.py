"""``report.html``: one self-contained page per run, rendered from results.json and the history.

Jinja2 with autoescape on: every string from a run (prompts, replies, error texts) is
escaped, so a reply holding ``<script>`` shows as text. No external asset, no script:
the page opens offline, from a CI artifact or an e-mail attachment.
"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from jinja2 import Environment, PackageLoader
from markupsafe import Markup, escape

from sessionstorm.canary import CANARY_RE
from sessionstorm.report import charts
from sessionstorm.report.collect import collect
from sessionstorm.report.timeline import anomalous_ops, choose_window, layout, overlap
from sessionstorm.rundir import RunDir

if TYPE_CHECKING:
    from sessionstorm.columns import Columns

FULL_EVIDENCE = 8  # pieces of evidence per code shown in full; the rest as a table
VERDICT = {True: ("CLEAN", "clean"), False: ("ANOMALIES FOUND", "bad"), "unknown": ("UNKNOWN", "unknown")}

_env: Environment | None = None


def env() -> Environment:
    global _env
    if _env is None:
        _env = Environment(loader=PackageLoader("sessionstorm.report", "templates"), autoescape=True,
                           trim_blocks=True, lstrip_blocks=True)
        _env.filters.update(mark=mark_canaries, when=_when, num=_num, pct=_pct, ms=_ms)
    return _env


def mark_canaries(text: str | None, classes: dict[str, str] | None = None) -> Markup:
    """Escape, then highlight canaries: ``classes`` maps a canary to a CSS class (whose op it is)."""
    if not text:
        return Markup("")
    safe = str(escape(text))  # canaries are [A-Z0-9-]: escaping never splits one
    return Markup(CANARY_RE.sub(lambda m: f'<mark class="{(classes or {}).get(m[0], "c-other")}">{m[0]}</mark>', safe))


def _when(t: float | None) -> str:
    return "" if t is None else dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _num(v: Any, digits: int = 2) -> str:
    return "–" if v is None else f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.2f} %"


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v:,.1f} ms"


def hide_password(url: str | None) -> str | None:
    """A DSN or URL with its password replaced: what the page shows of any connection string."""
    if not url or "@" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def configuration(meta: dict[str, Any]) -> list[tuple[str, Any]]:
    """What was run, for the page header; keys and secrets never appear (run.json is redacted at source)."""
    target = meta.get("target") or {}
    profile = target.get("profile") or {}
    tsec = profile.get("target") or {}
    keys = profile.get("keys") or {}
    rows = [("scenario", meta.get("scenario")), ("driver", meta.get("driver")),
            ("started", _when(meta.get("started"))), ("duration", _num(meta.get("duration_s") or meta.get("run_time"))),
            ("users", meta.get("users")), ("settings", meta.get("settings")),
            ("target", hide_password(target.get("url"))), ("target profile", tsec.get("name")),
            ("profile file", profile.get("source")), ("bug flags", target.get("bugs") or (tsec.get("vars") or {}).get("bugs")),
            ("LLM", tsec.get("llm")),
            ("keys", ", ".join(f"{k}: {v}" for k, v in keys.items() if v) or None),
            ("database", hide_password((profile.get("database") or {}).get("dsn")))]
    return [(k, v) for k, v in rows if v not in (None, "", [], {})]


def _evidence(a: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for ev in a["evidence"][:FULL_EVIDENCE]:
        details = ev.get("op_details") or []
        pair = None
        if len(details) == 2:
            classes = {c: "c-a" for c in details[0].get("canaries_sent") or ()}
            classes.update({c: "c-b" for c in details[1].get("canaries_sent") or ()})
            pair = {"ops": details, "classes": classes, "overlap": overlap(details)}
        out.append({**ev, "pair": pair, "singles": details if pair is None else []})
    return out


def context(run: RunDir, results: dict[str, Any], progress: bool = False, cols: Columns | None = None) -> dict[str, Any]:
    meta = run.read_json("run.json") if (run.path / "run.json").exists() else {}
    w0, w1, why = choose_window(results, meta.get("started"))
    view = collect(run.path, (w0, w1), progress, cols)
    origin = view.first or w0
    marked = anomalous_ops(results)
    points = charts.series(view.seconds)
    streams = None
    if view.ttft:
        ttft, gaps = sorted(view.ttft), sorted(view.gaps)
        streams = {"rows": [(name, [charts.percentile(v, p) for p in (50, 95, 99)], len(v))
                            for name, v in (("time to first token", ttft), ("inter-chunk gap", gaps)) if v],
                   "ttft_chart": charts.histogram(ttft, "Time to first token", "ms"),
                   "gaps_chart": charts.histogram(gaps, "Inter-chunk latency", "ms")}
    label, cls = VERDICT.get(results["valid"], VERDICT["unknown"])
    return {
        "run": run, "results": results, "meta": meta, "verdict": label, "verdict_cls": cls,
        "config": configuration(meta), "stats": results.get("stats") or {},
        "anomalies": [{**a, "shown": _evidence(a), "rest": a["evidence"][FULL_EVIDENCE:]} for a in results["anomalies"]],
        "crashed": {k: v["error"] for k, v in results.get("checkers", {}).items() if v.get("error")},
        "window": {"why": why, "from": w0 - origin, "to": w1 - origin, "ops": len(view.timeline),
                   "dropped": view.timeline_dropped},
        "by_key": layout(view.timeline, (w0, w1), "key", marked, view.faults, origin),
        "by_session": layout(view.timeline, (w0, w1), "session", marked, view.faults, origin),
        "latency_chart": charts.over_time(points, "Latency percentiles", "ms",
                                          {"p50": "p50", "p95": "p95", "p99": "p99"}) if points else None,
        "throughput_chart": charts.over_time(points, "Throughput", "operations / s", {"rps": "ops/s"}) if points else None,
        "errors_chart": charts.over_time(points, "Error rate", "% of decided operations",
                                         {"error_rate": "errors"}, scale=100) if points else None,
        "streams": streams, "kinds": view.kinds.most_common(), "snapshots": view.snapshots, "faults": view.faults,
        "generated": _when(dt.datetime.now(dt.UTC).timestamp()),
    }


def render_report(run_path: RunDir | str | os.PathLike[str], results: dict[str, Any] | None = None,
                  out: str | os.PathLike[str] | None = None, progress: bool = False,
                  cols: Columns | None = None) -> Path:
    """Render ``report.html`` of a checked run folder (results.json; checks it first if missing).
    ``cols``: the run's columns, already open (the check's, in `Run.finish`)."""
    run = run_path if isinstance(run_path, RunDir) else RunDir(run_path)
    if results is None:
        if (run.path / "results.json").exists():
            results = run.read_json("results.json")
        else:
            from sessionstorm.checker import check_run
            results = check_run(run, progress=progress, cols=cols)
    html = env().get_template("report.html.j2").render(**context(run, results, progress, cols))
    return write_atomically(Path(out) if out else run.path / "report.html", html)


def write_atomically(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path

