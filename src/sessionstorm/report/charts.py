"""Charts as inline SVG, drawn by pygal: series over time and histograms.

pygal writes plain SVG with its axes, legend and scaling, no numpy, fast for the few
hundred points a chart holds. Its interactive layer is an external script we never
load (``js=[]``); the small config script it still emits is dropped, so the page runs
no script at all and its Content-Security-Policy can forbid them.
"""
from __future__ import annotations

import math
import re
from typing import Any

import pygal
from markupsafe import Markup
from pygal.style import Style

from sessionstorm.report.collect import Second

MAX_POINTS = 300
STYLE = Style(background="white", plot_background="white", font_family="system-ui, sans-serif",
              label_font_size=11, major_label_font_size=11, legend_font_size=12, title_font_size=14,
              colors=("#2563eb", "#d97706", "#dc2626", "#16a34a", "#7c3aed"))
_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def _svg(chart: Any) -> Markup:
    svg = chart.render(is_unicode=True)
    return Markup(_COMMENT.sub("", _SCRIPT.sub("", svg)))


def _config(title: str, y_title: str) -> dict[str, Any]:
    return {"title": title, "y_title": y_title, "x_title": "seconds since start", "js": [], "style": STYLE,
            "disable_xml_declaration": True, "show_dots": False, "width": 960, "height": 280,
            "explicit_size": True, "legend_at_bottom": True, "truncate_legend": -1, "margin": 8,
            "print_values": False, "x_labels_major_count": 8, "show_minor_x_labels": False}


def percentile(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


def series(seconds: dict[int, Second]) -> list[dict[str, Any]]:
    """Per-second tallies merged into at most MAX_POINTS buckets, gaps counted as idle."""
    if not seconds:
        return []
    lo, hi = min(seconds), max(seconds)
    size = max(1, math.ceil((hi - lo + 1) / MAX_POINTS))
    out = []
    for start in range(lo, hi + 1, size):
        ops = fails = decided = 0
        lat: list[float] = []
        for s in range(start, min(start + size, hi + 1)):
            sec = seconds.get(s)
            if sec is not None:
                ops, fails, decided = ops + sec.ops, fails + sec.fails, decided + sec.decided
                lat.extend(sec.latency)
        lat.sort()
        out.append({"t": start - lo, "rps": ops / size, "error_rate": fails / decided if decided else 0.0,
                    "p50": percentile(lat, 50), "p95": percentile(lat, 95), "p99": percentile(lat, 99)})
    return out


def over_time(points: list[dict[str, Any]], title: str, y_title: str, names: dict[str, str],
              scale: float = 1.0) -> Markup:
    chart = pygal.XY(**_config(title, y_title), legend_at_bottom_columns=len(names))
    for field, label in names.items():
        chart.add(label, [(p["t"], None if p[field] is None else round(p[field] * scale, 3)) for p in points])
    return _svg(chart)


def histogram(values: list[float], title: str, x_title: str, bins: int = 30) -> Markup | None:
    if not values:
        return None
    values = sorted(values)
    lo, hi = values[0], percentile(values, 99.5) or values[-1]  # a long tail would squash the rest
    width = (hi - lo) / bins or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    chart = pygal.Histogram(**{**_config(title, "operations"), "x_title": x_title, "show_legend": False})
    chart.add(x_title, [(c, round(lo + i * width, 3), round(lo + (i + 1) * width, 3)) for i, c in enumerate(counts)])
    return _svg(chart)
