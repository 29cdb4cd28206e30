"""Reports: the HTML page of a run, and the comparison of two runs.

``render_report(run_dir)`` writes ``report.html``; ``compare_runs(old, new)`` judges a
new run against an old one. JUnit XML comes from pytest (see regression/conftest.py).
"""
from sessionstorm.report.compare import compare_runs
from sessionstorm.report.render import render_report

__all__ = ["compare_runs", "render_report"]
