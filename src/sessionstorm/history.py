"""The append-only record of a run: every operation and event, as JSON lines.

Each process writes its own file (``history/<process>.jsonl`` in the run folder), so
workers never contend for one file. An operation is written once, when its outcome is
known; an operation whose outcome is unknown (timeout, reset) is written with outcome
``info``. Faults, phases and database snapshots are events in the same stream.

Records (keys absent or null when not applicable):

``{"type": "op", "id", "process", "kind", "flavor", "outcome": "ok"|"fail"|"info",
"invoke_wall", "complete_wall", "invoke_mono", "complete_mono", "key" (fingerprint,
never the key), "user", "model_asked", "model_served", "session_sent", "session_seen",
"request_id_sent", "request_id_seen", "status", "canaries_sent", "canaries_seen",
"chunk_canaries" (streams: canaries per content chunk), "chunks", "ttft", "chunk_gaps",
"peer" (ip:port really reached), "server_id", "error", "turn", "value", "values",
"prompt_excerpt", "reply_excerpt", "in_flight"}``

``{"type": "event", "kind": "phase"|"fault"|"snapshot"|"note", "process", "wall",
"mono", "data": {...}}``

Writes are buffered and flushed at least once a second (and on close), so Ctrl-C or a
killed process loses at most the last second.

The file is sealed in segments as it grows (SEGMENT_RECORDS lines or SEGMENT_BYTES, whichever
first; and the last one on close): each sealed segment is converted to a Parquet part in
``columns/`` (`sessionstorm.columns.convert_range`) by a background OS thread, off the request path,
so the check finds the history already in columns. The JSON lines stay the record: what the
thread did not convert (a killed process, a failed conversion), the check converts.
"""
from __future__ import annotations

import functools
import hashlib
import os
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

OUTCOMES = ("ok", "fail", "info")
FLUSH_SECONDS = 1.0
# A segment per 128k records (~90 MB of lines, ~0.4 s of one core to convert): few parts for the check
# to open, and a killed writer leaves at most one segment for the check to convert (bench/checker.py).
SEGMENT_RECORDS = 1 << 17
SEGMENT_BYTES = 128 << 20  # large records (read-backs of 1000s of values) seal sooner: bounded copies
_LINE = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY  # one record, one line
_OP_HEAD = b'{"type":"op",'
CLOSE_MIN_RECORDS = 4096  # a smaller last segment is left to the check: a second of its time, no DuckDB here


@functools.lru_cache(maxsize=4096)  # few keys, asked for on every request
def fingerprint(key: str | None) -> str | None:
    """A stable, non-reversible name for an API key, safe to write to disk."""
    if key is None:
        return None
    return "fp_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def process_name(role: str = "main") -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{role}"


class HistoryWriter:
    """Streams records of one process to one file; thread- and greenlet-safe.

    A record is encoded when it is given (so later changes to the caller's dict do not reach
    it) and queued; whoever fills the queue to BATCH lines, or the flusher within
    FLUSH_SECONDS / 2, writes the queue out in one write. Nothing on the per-record path
    takes the lock: a gevent lock cost more than the encoding. `close` writes what is queued,
    then flushes and fsyncs: a stopped or interrupted run keeps every record it was given.
    """

    BATCH = 64  # lines per write; at 4000 ops/s a write every 16 ms

    def __init__(self, path: str | os.PathLike[str], process: str | None = None,
                 segment_records: int | None = SEGMENT_RECORDS) -> None:
        """``segment_records``: lines per sealed segment (None: no columns written during the run)."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.process = process or process_name()
        self._file = open(self.path, "ab", buffering=1 << 16)
        self._offset = os.fstat(self._file.fileno()).st_size
        if self._offset and not _ends_line(self.path, self._offset):
            self._file.write(b"\n")  # a line a killed writer left unfinished stays one (corrupt) line
            self._offset += 1
        self._segment = segment_records
        self._seg_start, self._seg_lines = self._offset, 0
        self._sealer = _Sealer(self.path) if segment_records else None
        self._lock = threading.Lock()  # one writer of the file at a time
        self._queue: deque[bytes] = deque()  # append and popleft are atomic: no lock to queue
        self._last_flush = time.monotonic()
        self._closed = False
        self._written = 0
        self._op_head = _OP_HEAD + b'"process":' + orjson.dumps(self.process) + b","  # record_op's
        # Flushes an idle writer too: at most FLUSH_SECONDS of records are ever unflushed.
        self._flusher = threading.Thread(target=self._flush_loop, name="history-flush", daemon=True)
        self._flusher.start()

    @property
    def count(self) -> int:
        """Records given so far (written or queued)."""
        return self._written + len(self._queue)

    def op(self, **fields: Any) -> None:
        fields.setdefault("process", self.process)
        self._add({"type": "op", **fields})

    def record_op(self, op: dict[str, Any], _dumps: Any = orjson.dumps, _option: int = _LINE) -> bool:
        """``op(**op)`` without copying the fields into keywords first (the Locust users' path).
        False when the writer is closed and the record was not taken. The op is encoded as it is and
        ``{"type":"op","process":...,`` put in front of its bytes: the same record (its keys in
        another order) without a copy of the dict (0.8 -> 0.4 µs a record, measured)."""
        if "type" in op or not op:  # a field that would clash with the head, or nothing to splice onto
            record = {"type": "op", **op}
            if "process" not in record:
                record["process"] = self.process
            return self._add(record)
        if self._closed:
            return False
        q = self._queue
        q.append((_OP_HEAD if "process" in op else self._op_head) + _dumps(op, option=_option)[1:])
        if len(q) >= self.BATCH:
            self._drain(flush=False)
        return True

    def event(self, kind: str, **data: Any) -> None:
        self._add(
            {"type": "event", "kind": kind, "process": self.process,
             "wall": time.time(), "mono": time.monotonic(), "data": data}
        )

    def _add(self, record: dict[str, Any], _dumps: Any = orjson.dumps, _option: int = _LINE) -> bool:
        if self._closed:
            return False
        q = self._queue
        q.append(_dumps(record, option=_option))
        if len(q) >= self.BATCH:
            self._drain(flush=False)
        return True

    def _drain(self, flush: bool) -> None:
        """Write every queued line (in order), and flush if asked or if the last flush is a second old."""
        with self._lock:
            if self._closed:
                return
            q = self._queue
            n = len(q)  # only this holder of the lock pops: the first n lines are there
            if n:
                self._write(b"".join([q.popleft() for _ in range(n)]), n)
            now = time.monotonic()
            if flush or now - self._last_flush >= FLUSH_SECONDS:
                self._file.flush()
                self._last_flush = now

    def flush(self) -> None:
        self._drain(flush=True)

    def _flush_loop(self) -> None:
        while not self._closed:
            time.sleep(FLUSH_SECONDS / 2)
            self.flush()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            q = self._queue
            self._closed = True  # from here records are refused: none can slip in after the last write
            n = len(q)
            self._write(b"".join([q.popleft() for _ in range(n)]), n, closing=True)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        if self._sealer is not None:
            self._sealer.wait()  # the run is over: its columns are complete before the check

    def _write(self, data: bytes, n: int, closing: bool = False) -> None:
        """Write whole lines (the lock held); seal the segment when it is full, or the last one on close."""
        self._file.write(data)
        self._written += n
        self._offset += len(data)
        self._seg_lines += n
        if self._sealer is None or not self._seg_lines:
            return
        full = self._seg_lines >= self._segment or self._offset - self._seg_start >= SEGMENT_BYTES
        if full or (closing and self._seg_lines >= min(CLOSE_MIN_RECORDS, self._segment)):
            self._file.flush()  # the converter reads the file: every byte of the segment must be in it
            self._sealer.submit(self._seg_start, self._offset, self._seg_lines)
            self._seg_start, self._seg_lines = self._offset, 0

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ends_line(path: Path, size: int) -> bool:
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        return fh.read(1) == b"\n"


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


def _real_thread(name: str) -> Any:
    """``_thread.<name>`` of real OS threads, also where gevent patched it (Locust): a conversion run in
    a greenlet would stall every user for its duration."""
    if _gevent_patched():
        return sys.modules["gevent.monkey"].get_original("_thread", name)
    import _thread
    return getattr(_thread, name)


class _Sealer:
    """Converts a writer's sealed segments to Parquet parts, one at a time, in a real OS thread at low
    priority. DuckDB releases the GIL while it converts, so the writer's threads or greenlets run on;
    nothing here touches a gevent-patched primitive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.jobs: deque[tuple[int, int, int]] = deque()
        self._start, lock = _real_thread("start_new_thread"), _real_thread("allocate_lock")
        self._mutex = lock()  # guards `running`; held for a few instructions only, so the hub may take it
        self._idle = lock()   # held while a worker runs: `wait` takes it
        self.running = False
        self.converted: list[dict[str, Any]] = []  # stamps of the parts made (tests, bench)
        self.errors: list[str] = []  # a failed conversion is left to the check
        self._convert: Callable[..., dict[str, Any]] | None = None

    def _load(self) -> None:
        """DuckDB is imported in the OS thread, at the first conversion: never in the writer's thread,
        where under gevent it stalled every greenlet (a Locust worker then misses its heartbeats)."""
        from sessionstorm.columns import columns_dir, convert_range
        self.out = columns_dir(self.path)
        self._convert = convert_range

    def submit(self, start: int, end: int, lines: int) -> None:
        self.jobs.append((start, end, lines))
        with self._mutex:
            if self.running:
                return
            self.running = True
            self._idle.acquire()
        self._start(self._run, ())

    def _run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, _real_thread("get_native_id")(), 10)  # Linux: this thread only; yields to the run
        except (AttributeError, OSError):
            pass
        if self._convert is None:
            try:
                self._load()
            except Exception as e:  # noqa: BLE001  nothing converted: the check converts it all
                self.errors.append(f"import: {e}")
                self.jobs.clear()
        while True:
            with self._mutex:
                if not self.jobs:
                    self.running = False
                    self._idle.release()
                    return
                start, end, lines = self.jobs.popleft()
            try:
                self.out.mkdir(exist_ok=True)
                self.converted.append(self._convert(self.path, start, end, self.out, lines=lines))
            except Exception as e:  # noqa: BLE001  the JSON lines are the record: the check converts it
                self.errors.append(f"{start}-{end}: {e}")

    def wait(self) -> None:
        """Until every submitted segment is converted. Polls: under gevent `time.sleep` yields, so the hub
        keeps running (heartbeats, other users) while the last segment converts."""
        while not self._idle.acquire(False):
            time.sleep(0.01)
        self._idle.release()


def history_files(location: str | os.PathLike[str]) -> list[Path]:
    """The history files of a run folder (or one file, or a folder of .jsonl files)."""
    p = Path(location)
    if p.is_file():
        return [p]
    if (p / "history").is_dir():
        p = p / "history"
    return sorted(p.glob("*.jsonl"))


def iter_records(
    files: Iterable[str | os.PathLike[str]],
    on_corrupt: Callable[[Path, int, str], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every record of the files in order; a corrupt or truncated line is reported and skipped.
    `progress(bytes_read)`, when given, is called every PROGRESS_LINES lines and after each
    file (bytes over all files so far); without it the loop is exactly the plain one."""
    loads = orjson.loads
    done = 0
    for f in files:
        path = Path(f)
        with open(path, "rb") as fh:
            lines = fh if progress is None else _reporting(fh, done, progress)
            for lineno, line in enumerate(lines, 1):
                try:
                    rec = loads(line)
                    if not isinstance(rec, dict) or "type" not in rec:
                        raise ValueError("not a history record")
                except ValueError as e:
                    if not line.strip():  # blank: skipped silently (checked only here, as it copies the line)
                        continue
                    if on_corrupt is not None:
                        on_corrupt(path, lineno, f"{e}: {line[:80]!r}")
                    continue
                yield rec
            if progress is not None:
                done += fh.tell()
                progress(done)


PROGRESS_LINES = 1 << 16


def _reporting(fh: Any, base: int, progress: Callable[[int], None]) -> Iterator[bytes]:
    """The file's lines, telling `progress` the bytes read every PROGRESS_LINES lines."""
    last = -1
    while (pos := fh.tell()) != last:
        if last >= 0:
            progress(base + pos)
        last = pos
        yield from islice(fh, PROGRESS_LINES)


BLOCK_BYTES = 1 << 20  # for scans of the raw bytes, which need no parsing


def iter_chunks(path: str | os.PathLike[str]) -> Iterator[bytes]:
    """The file in blocks of whole lines, for scans of the raw bytes."""
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK_BYTES):
            yield block + fh.readline()  # the rest of the block's last line
