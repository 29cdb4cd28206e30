"""The history as columns: the drivers' JSON lines, converted once to Parquet and queried with DuckDB.

The drivers keep writing JSON lines (cheap to append, safe to kill). The first check or report of
a run converts each ``history/*.jsonl`` to ``columns/<name>.parquet`` in the run folder (DuckDB's
JSON reader on one core); the view ``h`` adds ``seq``, the record's place in the history (file
number << 32 | row in the file), so order-dependent rules see history order.
``columns/manifest.json`` remembers each file's size and mtime: a changed file is converted again.
Checkers and the report then run SQL over the view ``h`` (one row per record, the columns of
``SCHEMA``); DuckDB streams Parquet and spills to disk past ``MEMORY_LIMIT``, so memory stays
bounded whatever the history's length.

A corrupt or truncated line makes DuckDB refuse the file; that file alone is then read line by
line (orjson, as ``history.iter_records`` does) to name each bad line, and its good lines are
converted. Lines whose fields have another type than ``SCHEMA`` says are reported the same way.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson

from sessionstorm.history import history_files

FORMAT = 1  # bump when SCHEMA changes: old caches are converted again
MEMORY_LIMIT = os.environ.get("SESSIONSTORM_CHECK_MEMORY", "512MB")  # 256MB: a 10M history with 800 kB read-backs ran out
ROW_GROUP = 16_384  # rows per Parquet row group: the writer's buffer stays small under MEMORY_LIMIT
# Uncompressed: 10 % less CPU for the conversion than snappy (1M ops: 3.8 vs 4.2 s), 1.8x the disk
# (233 vs 132 MB; the JSON lines are 677 MB)
THREADS = int(os.environ.get("SESSIONSTORM_CHECK_THREADS", "1"))  # one core by default: runs share the machine

# Every field a checker or the report reads (history.py's record schema); other fields are not read.
SCHEMA: dict[str, str] = {
    "type": "VARCHAR", "id": "VARCHAR", "process": "VARCHAR", "kind": "VARCHAR", "flavor": "VARCHAR",
    "name": "VARCHAR", "outcome": "VARCHAR", "invoke_wall": "DOUBLE", "complete_wall": "DOUBLE",
    "key": "VARCHAR", "user": "VARCHAR", "model_asked": "VARCHAR", "model_served": "VARCHAR",
    "session_sent": "VARCHAR", "session_seen": "VARCHAR", "request_id_sent": "VARCHAR",
    "request_id_seen": "VARCHAR", "status": "BIGINT", "canaries_sent": "VARCHAR[]", "canaries_seen": "VARCHAR[]",
    "chunk_canaries": "VARCHAR[][]", "chunks": "BIGINT", "ttft": "DOUBLE", "chunk_gaps": "DOUBLE[]",
    "peer": "VARCHAR", "server_id": "VARCHAR", "transport": "VARCHAR", "error": "VARCHAR",
    "error_body": "VARCHAR", "turn": "BIGINT", "value": "VARCHAR", "values": "VARCHAR[]",
    "not_found": "BOOLEAN", "prompt_excerpt": "VARCHAR", "reply_excerpt": "VARCHAR", "in_flight": "BIGINT",
    "wall": "DOUBLE", "mono": "DOUBLE", "data": "JSON",
}
_STRUCT = "{" + ", ".join(f"'{k}': '{v}'" for k, v in SCHEMA.items()) + "}"
_PY_TYPES: dict[str, tuple[type, ...]] = {"VARCHAR": (str,), "DOUBLE": (int, float), "BIGINT": (int,),
                                          "BOOLEAN": (bool,), "JSON": (object,)}

Corrupt = Callable[[Path, int, str], None]


def q(name: str) -> str:
    """A column name quoted for SQL (``values``, ``key``, ``type`` are keywords)."""
    return '"' + name.replace('"', '""') + '"'


def lit(v: str | float) -> str:
    """A value as an SQL literal (strings quoted; floats through their exact repr)."""
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return f"'{float(v)!r}'::DOUBLE"


def connect() -> duckdb.DuckDBPyConnection:
    # progress is tracked (for `query_progress`) but never printed: the bar is ours (sessionstorm.progress)
    con = duckdb.connect(config={"threads": THREADS, "memory_limit": MEMORY_LIMIT,
                                 "temp_directory": os.path.join(tempfile.gettempdir(), "sessionstorm-duckdb")})
    con.execute("SET enable_progress_bar = true; SET enable_progress_bar_print = false")
    return con


class Columns:
    """The columnar history of a run: ``con`` with the view ``h``; ``corrupt`` lines as dicts."""

    def __init__(self, location: str | os.PathLike[str], on_corrupt: Corrupt | None = None,
                 progress: Callable[[int], None] | None = None) -> None:
        self.files = history_files(location)
        self.con = connect()
        self.parts, self.corrupt = _convert(self.con, Path(location), self.files, progress)
        for c in self.corrupt:
            if on_corrupt is not None:
                on_corrupt(Path(c["path"]), c["line"], c["error"])
        if self.parts:  # seq: file number << 32 | row in the file (rows keep the file's order)
            self.con.execute("CREATE VIEW h AS " + " UNION ALL ".join(
                f"SELECT * EXCLUDE (file_row_number), ({i}::BIGINT << 32) + file_row_number AS seq "
                f"FROM read_parquet({lit(str(p))}, file_row_number = true)" for i, p in enumerate(self.parts)))
        else:  # no history: an empty view of the same columns
            cols = ", ".join(f"NULL::{t} AS {q(k)}" for k, t in SCHEMA.items())
            self.con.execute(f"CREATE VIEW h AS SELECT {cols}, NULL::BIGINT AS seq WHERE false")

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
        return self.con.execute(sql, list(params)).fetchone()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Columns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cache_dir(location: Path) -> Path:
    """``columns/`` in the run folder, or a temporary folder when the run folder is read-only."""
    run = location if location.is_dir() and location.name != "history" else location.parent
    d = run / "columns"
    try:
        d.mkdir(exist_ok=True)
        probe = d / f".w{os.getpid()}"
        probe.touch()
        probe.unlink()
        return d
    except OSError:
        tag = hashlib.sha256(str(run.resolve()).encode()).hexdigest()[:16]
        d = Path(tempfile.gettempdir()) / "sessionstorm-columns" / tag
        d.mkdir(parents=True, exist_ok=True)
        return d


def _convert(con: duckdb.DuckDBPyConnection, location: Path, files: list[Path],
             progress: Callable[[int], None] | None) -> tuple[list[Path], list[dict[str, Any]]]:
    """Each history file's Parquet part (converted unless the manifest says it is current)."""
    if not files:
        return [], []
    out = cache_dir(location)
    manifest_path = out / "manifest.json"
    try:
        manifest = orjson.loads(manifest_path.read_bytes())
        if manifest.get("format") != FORMAT:
            manifest = {}
    except (OSError, ValueError):
        manifest = {}
    known: dict[str, Any] = manifest.get("files") or {}
    fresh: dict[str, Any] = {}
    parts, corrupt = [], []
    done = 0
    for f in files:
        st = f.stat()
        stamp = [st.st_size, st.st_mtime_ns]
        part = out / f"{f.stem}.parquet"
        entry = known.get(f.name)
        if not (entry and entry["stamp"] == stamp and part.exists()):
            bad = _convert_file(con, f, part, done, progress)
            entry = {"stamp": stamp, "corrupt": bad}
        fresh[f.name] = entry
        corrupt += [{"path": str(f), **c} for c in entry["corrupt"]]
        parts.append(part)
        done += st.st_size
        if progress is not None:
            progress(done)
    for stale in set(known) - set(fresh):
        (out / f"{Path(stale).stem}.parquet").unlink(missing_ok=True)
    if fresh != known:
        tmp = manifest_path.with_name(f".manifest.{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps({"format": FORMAT, "files": fresh}))
        os.replace(tmp, manifest_path)
    return parts, corrupt


def _copy(con: duckdb.DuckDBPyConnection, src: Path, dest: Path) -> None:
    """One JSON-lines file to Parquet; rows keep the file's order (DuckDB preserves insertion order)."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    con.execute(f"COPY (SELECT * FROM read_json({lit(str(src))}, format='newline_delimited', columns={_STRUCT})) "
                f"TO {lit(str(tmp))} "
                f"(FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP}, COMPRESSION uncompressed)")
    os.replace(tmp, dest)


def _convert_file(con: duckdb.DuckDBPyConnection, f: Path, part: Path, base: int,
                  progress: Callable[[int], None] | None) -> list[dict[str, Any]]:
    """Convert one file; its corrupt lines (line number, error), found only when DuckDB refuses it."""
    size = f.stat().st_size
    with _polling(con, base, size, progress):
        try:
            _copy(con, f, part)
            untyped = con.execute(f"SELECT count(*) FROM read_parquet({lit(str(part))}) WHERE type IS NULL").fetchone()[0]
            if not untyped:
                return []
        except duckdb.Error:
            pass
    # Slow path, for this file only: name every bad line, convert the good ones.
    bad: list[dict[str, Any]] = []
    clean = part.with_name(f".{f.stem}.{os.getpid()}.clean.jsonl")
    try:
        with open(f, "rb") as fh, open(clean, "wb") as out:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                why = _invalid(line)
                if why is None:
                    out.write(line if line.endswith(b"\n") else line + b"\n")
                else:
                    bad.append({"line": lineno, "error": f"{why}: {line[:80]!r}"})
        _copy(con, clean, part)
    finally:
        clean.unlink(missing_ok=True)
    return bad


def _invalid(line: bytes) -> str | None:
    """Why a line is no history record (None: it is one), as ``history.iter_records`` judges, plus the
    column types: a field of another type than SCHEMA's could not be checked."""
    try:
        rec = orjson.loads(line)
    except ValueError as e:
        return str(e)
    if not isinstance(rec, dict) or "type" not in rec:
        return "not a history record"
    for k, v in rec.items():
        t = SCHEMA.get(k)
        if t is None or v is None:
            continue
        if t.endswith("[][]"):
            ok = isinstance(v, list) and all(c is None or (isinstance(c, list) and all(x is None or isinstance(x, str) for x in c)) for c in v)
        elif t.endswith("[]"):
            inner = _PY_TYPES[t[:-2]]
            ok = isinstance(v, list) and all(x is None or (isinstance(x, inner) and not (inner == (int,) and isinstance(x, bool))) for x in v)
        else:
            inner = _PY_TYPES[t]
            ok = isinstance(v, inner) and (t == "BOOLEAN" or t == "JSON" or not isinstance(v, bool))
        if not ok:
            return f"field {k!r} is not {t}"
    return None


class _polling:
    """Progress inside one large file: DuckDB's own query progress, read from a side thread."""

    def __init__(self, con: duckdb.DuckDBPyConnection, base: int, size: int,
                 progress: Callable[[int], None] | None) -> None:
        self.con, self.base, self.size, self.progress = con, base, size, progress
        self.stop = threading.Event()

    def _loop(self) -> None:
        while not self.stop.wait(0.25):
            try:
                pct = self.con.query_progress()
            except Exception:  # noqa: BLE001  progress is cosmetic
                return
            if self.progress is not None and pct is not None and 0 <= pct < 100:
                self.progress(self.base + int(self.size * pct / 100))

    def __enter__(self) -> None:
        if self.progress is not None and self.size > (16 << 20):
            self.thread = threading.Thread(target=self._loop, name="columns-progress", daemon=True)
            self.thread.start()

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if hasattr(self, "thread"):
            self.thread.join()
