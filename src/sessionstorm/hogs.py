"""CPU hogs beside a run: the busy machine a CI user really has.

    with hogs(4):             # 4 CPU-burning processes until the block ends
        run_the_bug_zoo()

``stress-ng --cpu N`` when it is on PATH (Debian package ``stress-ng``), else one Python
busy loop per hog. Each hog set is started in its own process group and killed as a group at
exit -- exactly the processes started here, never anything found by name. The hogs stay in
the caller's session: with the kernel's autogroup scheduling (``sched_autogroup_enabled``) a
new session is one scheduling group, and four hogs in it take no more CPU than one process
of the run. Every hog also carries its own deadline (``max_s``), so a hog outlives a crashed
parent by at most that.

    python -m sessionstorm.hogs 4 60      # 4 hogs for 60 s, e.g. beside `pytest regression`
    python -m sessionstorm.hogs 4 600 -- pytest regression -n auto   # hogs while the command runs
                                          # (at most 600 s); exits with the command's code
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# A hog burns CPU in a tight loop until its deadline; it reads nothing and writes nothing.
_PY_HOG = "import sys,time\nend=time.monotonic()+float(sys.argv[1])\nwhile time.monotonic()<end:\n    pass\n"


@dataclass
class Hogs:
    n: int
    tool: str                       # "stress-ng" or "python"
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def alive(self) -> bool:
        """True while every hog started is still burning (False after its deadline)."""
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:  # the group is the hog and the workers it forked, nothing else
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            p.wait(timeout=10)
        # stress-ng's workers are the leader's children: wait (bounded) until the group is gone.
        deadline = time.monotonic() + 5
        for p in self.procs:
            while time.monotonic() < deadline:
                try:
                    os.killpg(p.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.02)


def start_hogs(n: int, *, max_s: float = 900.0, tool: str | None = None) -> Hogs:
    """Start n CPU hogs (none when n == 0); stop them with ``.stop()``."""
    if n < 0:
        raise ValueError(f"hogs: n must be >= 0, not {n}")
    tool = tool or ("stress-ng" if shutil.which("stress-ng") else "python")
    h = Hogs(n, tool)
    if n == 0:
        return h
    quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL,
             "process_group": 0}
    try:
        if tool == "stress-ng":
            h.procs.append(subprocess.Popen(
                ["stress-ng", "--cpu", str(n), "--cpu-method", "int64", "--timeout", f"{int(max_s)}s", "--quiet"],
                **quiet))
        else:
            for _ in range(n):
                h.procs.append(subprocess.Popen([sys.executable, "-c", _PY_HOG, str(max_s)], **quiet))
    except BaseException:
        h.stop()
        raise
    return h


@contextmanager
def hogs(n: int, *, max_s: float = 900.0, tool: str | None = None) -> Iterator[Hogs]:
    """n CPU-burning processes for the duration of the block; killed (by their own pids) at exit."""
    h = start_hogs(n, max_s=max_s, tool=tool)
    try:
        yield h
    finally:
        h.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m sessionstorm.hogs N SECONDS [-- COMMAND ...]``: hogs for a while, or while
    COMMAND runs (SECONDS is then the hogs' bound, not the command's)."""
    args = list(argv if argv is not None else sys.argv[1:])
    command = args[args.index("--") + 1:] if "--" in args else []
    args = args[:args.index("--")] if "--" in args else args
    n, secs = int(args[0]) if args else 4, float(args[1]) if len(args) > 1 else 60.0
    # `kill PID` (and Ctrl-C, which a shell's background job ignores) ends the hogs too
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    with hogs(n, max_s=secs + 5) as h:
        print(f"{n} hogs ({h.tool}), pids {h.pids}, " + (f"beside {' '.join(command)} (at most {secs:g} s)"
              if command else f"for {secs:g} s"), file=sys.stderr, flush=True)
        if not command:
            time.sleep(secs)
            return 0
        rc = subprocess.call(command)
        if not h.alive():
            print("hogs: they ended (their deadline) before the command did", file=sys.stderr, flush=True)
        return rc


if __name__ == "__main__":
    sys.exit(main())
