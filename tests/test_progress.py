"""Progress on long work: `check`, `report` and `compare` draw a bar on a terminal, and nothing otherwise.

The terminal is a real pseudo-terminal (python's pty module): the command sees a tty on its
stderr exactly as at a desk. Without one (a pipe, as in CI) not a byte of a bar is printed.
"""
from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from sessionstorm import progress
from sessionstorm.history import history_files, iter_records
from sessionstorm.synth import write_run

BAR = "━"  # Rich's bar glyph
CLI = [sys.executable, "-m", "sessionstorm.cli"]


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    """A ~200k-operation synthetic run (130 MB of history): a few seconds to check."""
    return write_run(tmp_path_factory.mktemp("big"), 200_000, anomalies=("CROSSTALK",)).path


def in_terminal(args: list[str], timeout: float = 240) -> tuple[int, str]:
    """Run a command with a pseudo-terminal as its stdin, stdout and stderr; (exit code, all it printed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "SESSIONSTORM_PROGRESS_DELAY_S": "0"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                out += data
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            pytest.fail(f"{args} did not finish within {timeout} s")
        return proc.wait(timeout=30), out.decode(errors="replace")
    finally:
        os.close(master)


def test_check_on_a_terminal_shows_a_progress_bar(big_run):
    code, out = in_terminal([*CLI, "check", str(big_run)])
    assert code == 1, out[-2000:]  # the injected crosstalk
    assert "checking" in out and BAR in out and "MB" in out, out[-2000:]
    assert "verdict: ANOMALIES FOUND" in out


def test_check_off_a_terminal_prints_no_bar(big_run):
    p = subprocess.run([*CLI, "check", str(big_run)], capture_output=True, text=True, timeout=240, check=False)
    assert p.returncode == 1, p.stderr[-2000:]
    assert BAR not in p.stdout + p.stderr and "\x1b[" not in p.stdout + p.stderr
    assert "checking" not in p.stderr and "verdict: ANOMALIES FOUND" in p.stdout


def test_report_on_a_terminal_shows_a_bar_and_off_one_none(big_run, tmp_path):
    code, out = in_terminal([*CLI, "report", str(big_run), "-o", str(tmp_path / "a.html")])
    assert code == 0 and "report" in out and BAR in out, out[-2000:]
    p = subprocess.run([*CLI, "report", str(big_run), "-o", str(tmp_path / "b.html")], capture_output=True, text=True, check=False,
                       timeout=240)
    assert p.returncode == 0 and BAR not in p.stdout + p.stderr, p.stderr[-2000:]
    assert (tmp_path / "a.html").stat().st_size > 10_000 and (tmp_path / "b.html").stat().st_size > 10_000


def test_compare_off_a_terminal_prints_no_bar(big_run):
    if not (big_run / "results.json").exists():  # compare reads results.json; on this xdist worker no check ran yet
        subprocess.run([*CLI, "check", str(big_run)], capture_output=True, timeout=240, check=False)
    assert (big_run / "results.json").exists()
    p = subprocess.run([*CLI, "compare", str(big_run), str(big_run)], capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert BAR not in p.stdout + p.stderr and "verdict: no regression" in p.stdout


def test_the_history_reader_reports_bytes_and_reads_the_same_records(tmp_path):
    run = write_run(tmp_path, 70_000)  # more than one report interval
    files = history_files(run.path)
    seen: list[int] = []
    with_progress = list(iter_records(files, progress=seen.append))
    assert with_progress == list(iter_records(files))
    total = sum(f.stat().st_size for f in files)
    assert seen == sorted(seen) and seen[-1] == total and 0 < seen[0] < total


def test_off_a_terminal_nothing_is_made(tmp_path):
    """In tests (and CI) stderr is no terminal: the callers get None and run their plain loops."""
    with open(tmp_path / "f", "w") as f:
        assert progress.for_files("x", [], stream=f) is None
        assert progress.bar("x", 10, stream=f) is None
        steps = progress.Steps("x", 2, stream=f)
        steps.step("a")
        steps.done()
        assert f.tell() == 0
