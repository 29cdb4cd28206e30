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
"""
from __future__ import annotations

import functools
import hashlib
import os
import socket
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

    def __init__(self, path: str | os.PathLike[str], process: str | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.process = process or process_name()
        self._file = open(self.path, "ab", buffering=1 << 16)
        self._lock = threading.Lock()  # one writer of the file at a time
        self._queue: deque[bytes] = deque()  # append and popleft are atomic: no lock to queue
        self._last_flush = time.monotonic()
        self._closed = False
        self._written = 0
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

    def record_op(self, op: dict[str, Any]) -> None:
        """``op(**op)`` without copying the fields into keywords first (the Locust users' path)."""
        record = {"type": "op", **op}
        if "process" not in record:
            record["process"] = self.process
        self._add(record)

    def event(self, kind: str, **data: Any) -> None:
        self._add(
            {"type": "event", "kind": kind, "process": self.process,
             "wall": time.time(), "mono": time.monotonic(), "data": data}
        )

    def _add(self, record: dict[str, Any]) -> None:
        if self._closed:
            return
        self._queue.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY))
        if len(self._queue) >= self.BATCH:
            self._drain(flush=False)

    def _drain(self, flush: bool) -> None:
        """Write every queued line (in order), and flush if asked or if the last flush is a second old."""
        with self._lock:
            if self._closed:
                return
            q = self._queue
            n = len(q)  # only this holder of the lock pops: the first n lines are there
            if n:
                self._file.write(b"".join([q.popleft() for _ in range(n)]))
                self._written += n
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
            self._file.write(b"".join([q.popleft() for _ in range(n)]))
            self._written += n
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
