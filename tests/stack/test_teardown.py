"""Teardown leaves no process and no folder behind: on signals and on a failed start."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from stack_helpers import ENVSERVER, HERE, alive, descendants

from sessionstorm.errors import StartupError
from sessionstorm.stack import BACKENDS, Stack, reaper

SESSIONSTORM = str(Path(sys.executable).with_name("sessionstorm"))


def wait_gone(proc: subprocess.Popen[str], pids: list[list[float]], timeout: float = 30) -> int:
    code = proc.wait(timeout=timeout)
    deadline = time.monotonic() + 5  # grandchildren are reaped by init a moment later
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return code


def start_child(cmd: list[str]) -> tuple[subprocess.Popen[str], dict]:  # type: ignore[type-arg]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    assert line, f"child printed nothing; stderr: {proc.stderr.read()[-2000:]}"  # type: ignore[union-attr]
    return proc, json.loads(line)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_tears_down_everything(sig: signal.Signals) -> None:
    proc, seen = start_child([sys.executable, str(HERE / "stack_child.py")])
    pids = seen["pids"]
    names = {psutil.Process(int(p)).name() for p, _ in pids}
    assert {"postgres", "redis-server"} <= names and len(pids) >= 6  # postgres has its workers too
    assert Path(seen["dir"]).is_dir()

    proc.send_signal(sig)
    wait_gone(proc, pids)
    assert alive(pids) == [], f"left running after {sig.name}: {alive(pids)}"
    assert not Path(seen["dir"]).exists()


def test_sigkill_of_the_owner_leaves_nothing_running() -> None:
    """No handler runs on SIGKILL: the reaper (sessionstorm.stack.reaper) stops what was started."""
    proc, seen = start_child([sys.executable, str(HERE / "stack_child.py")])
    pids = seen["pids"]
    names = {psutil.Process(int(p)).name() for p, _ in pids}
    assert {"postgres", "redis-server"} <= names and len(pids) >= 6

    proc.kill()
    code = wait_gone(proc, pids, timeout=30)
    deadline = time.monotonic() + 30  # the reaper's SIGTERM, then SIGKILL after its grace
    while (alive(pids) or Path(seen["dir"]).exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert code == -signal.SIGKILL
    assert alive(pids) == [], f"left running after SIGKILL: {alive(pids)}"
    assert not Path(seen["dir"]).exists()


def test_the_reaper_acts_only_without_a_goodbye() -> None:
    """The protocol with real processes: a group told of is stopped when the pipe ends
    without a goodbye, and left alone after one (a normal exit stops its own things)."""
    for goodbye, survives in ((b".\n", True), (b"", False)):
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
        reaper = subprocess.Popen([sys.executable, "-m", "sessionstorm.stack.reaper"], stdin=subprocess.PIPE)
        reaper.communicate(f"+{sleeper.pid}\n".encode() + goodbye, timeout=30)
        try:
            assert (sleeper.poll() is None) is survives, (goodbye, sleeper.returncode)
        finally:
            sleeper.kill()
            sleeper.wait(10)


def test_up_prints_addresses_and_stops_on_ctrl_c() -> None:
    proc = subprocess.Popen([SESSIONSTORM, "up", "--target-command", f"{sys.executable} {ENVSERVER} --dsn {{postgres_dsn}}",
                             "--ready-path", "/"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(7))  # type: ignore[union-attr]
    me = psutil.Process(proc.pid)
    pids = [[p.pid, p.create_time()] for p in me.children(recursive=True)]
    assert lines["backend"] == "embedded"
    assert lines["postgres_dsn"].startswith("postgresql://postgres:postgres@127.0.0.1:")
    assert lines["redis_url"].startswith("redis://127.0.0.1:")
    assert lines["target_target_url"].startswith("http://127.0.0.1:")
    for key in ("provider_url", "target_target_postgres_dsn", "target_target_redis_url"):
        assert key in lines

    proc.send_signal(signal.SIGINT)
    code = wait_gone(proc, pids)
    err = proc.stderr.read()  # type: ignore[union-attr]
    assert code == 0, err
    assert alive(pids) == []
    for part in ("postgres ready on", "redis ready on", "provider ready on", "target 'target' ready on", "stopping"):
        assert part in err
    assert "Traceback" not in err


def test_up_with_unknown_backend_is_one_line_exit_2() -> None:
    r = subprocess.run([SESSIONSTORM, "up", "--backend", "nope"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == (f"sessionstorm: error: backend=nope: expected one of {', '.join(BACKENDS)}; "
                                "pass --backend or set SESSIONSTORM_BACKEND to one of them")


def test_up_shows_the_last_log_lines_of_a_target_that_never_gets_ready() -> None:
    script = "import sys; print('loading model weights', flush=True); print('no GPU found', flush=True); sys.exit(4)"
    r = subprocess.run([SESSIONSTORM, "up", "--target-command", f"{{python}} -c \"{script}\""],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    err = r.stderr.splitlines()
    assert err[-4].startswith("sessionstorm: error: target") and "did not become ready" in err[-4], r.stderr
    assert err[-3:] == ["sessionstorm: last 2 log lines of target 'target':", "  loading model weights", "  no GPU found"]
    assert "Traceback" not in r.stderr


def test_failed_start_tears_down_the_part_that_ran() -> None:
    seen: list[list[float]] = []
    lines: list[str] = []
    before = {pid for pid, _ in descendants()}  # e.g. the session stack of other tests

    def progress(line: str) -> None:  # snapshot what runs after each service is ready
        lines.append(line)
        seen.extend(p for p in descendants() if p[0] not in before and p[0] != reaper.pid())  # it outlives stacks

    stack = Stack(progress=progress, provider_args=["--min-tokens", "1.5"], start_timeout=20)
    with pytest.raises(StartupError) as err:
        stack.start()
    assert "stub provider did not become ready" in str(err.value)
    assert "process exited with code 2" in str(err.value)
    assert "min-tokens" in err.value.logs
    # the parts start at once: both that could start did, in either order, and were stopped
    assert sorted(line.split()[0] for line in lines) == ["postgres", "redis"]
    assert len(seen) >= 2
    assert alive(seen) == []
    assert stack.dir is None and stack.backend is None


def test_stop_twice_and_folder_removed() -> None:
    stack = Stack().start()
    folder, pids = stack.dir, [[p.pid, p.create_time()] for p in map(psutil.Process, stack.pids())]
    assert folder is not None and folder.is_dir()
    stack.stop()
    stack.stop()
    assert not folder.exists()
    assert alive(pids) == []


def test_an_exiting_process_kills_no_other_stacks_servers() -> None:
    """A process that exits kills only what its own services started: mirakuru's exit hook
    killed every process whose marker merely contains the exiting pid (its twin here, kept as
    the premise), so one sessionstorm process exiting could kill another stack's server."""
    import os

    def exiter(code: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", f"{code}\nimport sys; sys.stdin.read()"], stdin=subprocess.PIPE)

    fates = {}
    for name, code in [("mirakuru's hook", "import mirakuru.base"),
                       ("ours", "import sessionstorm.stack.process")]:
        ex = exiter(code)
        # another stack's server: its marker holds the exiter's pid among other digits
        victim = subprocess.Popen(["sleep", "60"], env={**os.environ, "mirakuru_uuid": f"9{ex.pid}9:victim"})
        try:
            ex.stdin.close()  # type: ignore[union-attr]
            assert ex.wait(timeout=60) == 0
            try:
                fates[name] = victim.wait(timeout=2)
            except subprocess.TimeoutExpired:
                fates[name] = "alive"
        finally:
            victim.kill()
            victim.wait()
    assert fates["mirakuru's hook"] == -signal.SIGKILL, f"premise: mirakuru's hook kills by substring ({fates})"
    assert fates["ours"] == "alive", fates


def test_a_service_left_running_is_killed_when_its_process_exits(tmp_path: Path) -> None:
    """Without mirakuru's exit hook, a service nobody stopped still dies with the process that started it."""
    code = ("import sys; from pathlib import Path; from sessionstorm.stack.process import Service\n"
            f"s = Service('sleeper', ['sleep', '60'], lambda: (True, 'up'), 'nothing', Path({str(tmp_path)!r}) / 'log')\n"
            "s.launch(); print(s.pid, flush=True)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
