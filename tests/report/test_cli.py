"""`sessionstorm report RUN_DIR` re-renders a recorded run; bad input is one line, exit 2."""
from __future__ import annotations

from sessionstorm.cli import main
from sessionstorm.synth import write_run


def test_report_renders_a_recorded_run(tmp_path, capsys):
    run = write_run(tmp_path, 2_000, anomalies=("CROSSTALK", "SERVER_ERROR"))
    assert main(["report", str(run.path)]) == 0  # no results.json yet: it checks first
    html = (run.path / "report.html").read_text()
    assert "ANOMALIES FOUND" in html and "CROSSTALK" in html and "SERVER_ERROR" in html
    assert "report.html" in capsys.readouterr().out
    (run.path / "report.html").unlink()
    assert main(["report", str(run.path)]) == 0 and (run.path / "report.html").is_file()


def test_report_of_a_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "RUN_DIR" in err and "reports/" in err
