"""A history writer in a child process, SIGKILLed once what it wrote is past the flush interval."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from sessionstorm.history import FLUSH_SECONDS


def write_then_sigkill(code: str) -> None:
    """Runs ``code`` (it writes history) in a child, then kills the child with SIGKILL: nothing of
    the writer's own shutdown runs, so what is on disk is what a killed run leaves."""
    script = textwrap.dedent(code) + '\nimport time\nprint("written", flush=True)\ntime.sleep(60)\n'
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
        time.sleep(FLUSH_SECONDS + 0.6)  # past the flush interval: everything written must be on disk
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
