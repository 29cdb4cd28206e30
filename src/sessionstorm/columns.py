"""The history as columns: the drivers' JSON lines, converted to Parquet parts and queried with DuckDB.

The drivers keep writing JSON lines (cheap to append, safe to kill). Each writer seals its file in
segments as it goes (``history.HistoryWriter``) and converts each sealed segment here, in the
background; the check converts only what no writer did (the live tail of a running or killed writer,
a gap, a file from another tool), with the same function. A part is ``columns/<file stem>.<start>-<end>.parquet``:
the bytes [start, end) of one history file, next to its stamp ``.json`` (written last, atomically; one
per part, so processes writing into one run folder never rewrite a shared manifest). A stamp holds the
range's line count, its corrupt lines and CRCs of a few windows of its bytes: a changed file is
converted again. The view ``h`` adds ``seq``, the record's place in the history (file number << 32 |
line of the part's first line + row in the part), so order-dependent rules see history order.
Checkers and the report then run SQL over the view ``h`` (one row per record, the columns of
``SCHEMA``); DuckDB streams Parquet and spills to disk past ``MEMORY_LIMIT``, so memory stays
bounded whatever the history's length.

A small history that no writer converted (under ``SMALL_BYTES``: the regression suite's runs of a few
hundred ops) skips the Parquet round trip: its lines are read straight into a table of the process's
in-memory database (made once: a new database costs ~14 ms of CPU, a cursor nothing), and ``h`` is
that table, with the same columns and the same ``seq``. The checkers' SQL is the same either way.

A corrupt or truncated line makes DuckDB refuse the range; that range alone is then read line by
line (orjson, as ``history.iter_records`` does) to name each bad line, and its good lines are
converted. Lines whose fields have another type than ``SCHEMA`` says are reported the same way.
"""
from __future__ import annotations

import bisect
import contextlib
import hashlib
import itertools
import os
import re
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import duckdb
import orjson

FORMAT = 2  # bump when SCHEMA or the part layout changes: old parts are converted again
MEMORY_LIMIT = os.environ.get("SESSIONSTORM_CHECK_MEMORY", "512MB")  # 256MB: a 10M history with 800 kB read-backs ran out
ROW_GROUP = 16_384  # rows per Parquet row group: the writer's buffer stays small under MEMORY_LIMIT
# Uncompressed: 10 % less CPU for the conversion than snappy (1M ops: 3.8 vs 4.2 s), 1.8x the disk
# (233 vs 132 MB; the JSON lines are 677 MB)
THREADS = int(os.environ.get("SESSIONSTORM_CHECK_THREADS", "1"))  # one core by default: runs share the machine
PROBES = 8  # CRC windows per part (first and last 4 kB, the rest spread between): cheap, and catch a rewrite
PROBE_BYTES = 4096
COPY_BLOCK = 1 << 20
# A history of at most this many bytes that no writer converted is read into a table, not Parquet parts:
# below it reading the lines again costs less than writing and reading parts (bench/finish.py)
SMALL_BYTES = int(os.environ.get("SESSIONSTORM_SMALL_HISTORY", str(8 << 20)))
# Optimizer passes a small history's queries skip (a setting of the whole shared database, which only small
# histories use; every one sets the same value): on a few hundred rows they cost more
# than they save (~0.3 ms of the ~1.3 ms of each of ~40 queries); the plans keep their joins, filters and
# pushdowns, and the results are the same (they only rewrite plans)
SMALL_SKIPPED_OPTIMIZERS = "statistics_propagation,expression_rewriter,common_subexpressions,compressed_materialization"
_TAGS = itertools.count()  # temporary names unique within the process

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


def _config() -> dict[str, Any]:
    return {"threads": THREADS, "memory_limit": MEMORY_LIMIT,
            "temp_directory": os.path.join(tempfile.gettempdir(), "sessionstorm-duckdb")}


def connect() -> duckdb.DuckDBPyConnection:
    """A database of its own: for Parquet parts (its metadata cache lives and dies with it, so a part
    rewritten under the same name is never read through a stale footer)."""
    # progress is tracked (for `query_progress`) but never printed: the bar is ours (sessionstorm.progress)
    con = duckdb.connect(config=_config())
    con.execute("SET enable_progress_bar = true; SET enable_progress_bar_print = false")
    con.execute("SET parquet_metadata_cache = true")  # ~30 queries over the same parts: their footers read once
    return con


_shared: duckdb.DuckDBPyConnection | None = None
_shared_lock = threading.Lock()


def shared_cursor() -> duckdb.DuckDBPyConnection:
    """A connection of its own (temporary tables, views and settings are per connection) to the process's
    in-memory database, made once per process: what small histories are read into."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = duckdb.connect(config=_config())
        return _shared.cursor()


_inherited: list[duckdb.DuckDBPyConnection] = []


def _forget_shared() -> None:
    """A forked child makes its own database: the parent's is not safe to use from it, nor to close (it is
    kept referenced, never collected)."""
    global _shared, _shared_lock
    if _shared is not None:
        _inherited.append(_shared)
    _shared, _shared_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_shared)


class Columns:
    """The columnar history of a run: ``con`` with ``h`` (a view over Parquet parts, or the table a small
    history was read into); ``corrupt`` lines as dicts. ``derive`` makes what several queries read."""

    def __init__(self, location: str | os.PathLike[str], on_corrupt: Corrupt | None = None,
                 progress: Callable[[int], None] | None = None) -> None:
        from sessionstorm.history import history_files  # here: history imports this module under gevent
        self.files = history_files(location)
        self._reader: duckdb.DuckDBPyConnection | None = None
        self._schema: str | None = None  # a small history's, in the shared database
        small = _small(Path(location), self.files)
        self.con = shared_cursor() if small else connect()
        try:
            if small:
                self.parts: list[list[Part]] = []
                self._load(progress)
            else:
                self.parts, self.corrupt = _convert(self.con, Path(location), self.files, progress)
                self._views()
        except BaseException:
            self.close()
            raise
        for c in self.corrupt:
            if on_corrupt is not None:
                on_corrupt(Path(c["path"]), c["line"], c["error"])

    def _views(self) -> None:
        # seq: file number << 32 | 0-based line of the part's first line + row in the part (rows keep the
        # file's order; a part's rows are at most its lines, so seq grows with the history). One scan per
        # part, its base a constant: a filter on seq then skips row groups (`briefs`, `op_rows`).
        self._parts = [(p.path, (i << 32) + p.base) for i, parts in enumerate(self.parts) for p in parts]
        self._starts = [start for _, start in self._parts]  # ascending: files in order, parts in order
        selects = [f"SELECT * EXCLUDE (file_row_number), {start}::BIGINT + file_row_number AS seq "
                   f"FROM read_parquet({lit(str(path))}, file_row_number = true)" for path, start in self._parts]
        if selects:
            self.con.execute("CREATE VIEW h AS " + " UNION ALL ".join(selects))
        else:  # no history: an empty view of the same columns
            cols = ", ".join(f"NULL::{t} AS {q(k)}" for k, t in SCHEMA.items())
            self.con.execute(f"CREATE VIEW h AS SELECT {cols}, NULL::BIGINT AS seq WHERE false")

    def _load(self, progress: Callable[[int], None] | None) -> None:
        """A small history into the table ``h`` of a schema of its own in the shared database (unique in the
        process, dropped on close; first on this connection's search path, so ``h`` is the table itself, not
        a view: a view over 40 columns costs ~0.4 ms to bind in every query). ``seq`` as the Parquet path
        makes it for a file in one part (file number << 32 | row); corrupt lines named by the same slow path."""
        self.corrupt = []
        self._schema = f"history_{os.getpid()}_{next(_TAGS)}"
        table = f"{self._schema}.h"
        cols = ", ".join(f"{q(k)} {t}" for k, t in SCHEMA.items())
        self.con.execute(f"CREATE SCHEMA {self._schema}; SET search_path = '{self._schema}'; "
                         f"SET disabled_optimizers = '{SMALL_SKIPPED_OPTIMIZERS}'; "
                         f"CREATE TABLE {table} ({cols}, seq BIGINT)")
        refused: list[int] = []
        if self.files:
            try:  # every file in one statement, as a rule
                self.con.execute(f"INSERT INTO {table} " + " UNION ALL ".join(
                    _rows_of(f, i << 32) for i, f in enumerate(self.files)))
            except duckdb.Error:  # a corrupt line: then file by file
                for i, f in enumerate(self.files):
                    try:
                        self.con.execute(f"INSERT INTO {table} {_rows_of(f, i << 32)}")
                    except duckdb.Error:
                        refused.append(i)
        untyped = [i for (i,) in self.con.execute(f"SELECT DISTINCT seq >> 32 FROM {table} WHERE type IS NULL").fetchall()]
        for i in sorted({*refused, *untyped}):  # the slow path, for these files only
            f = self.files[i]
            self.con.execute(f"DELETE FROM {table} WHERE seq >> 32 = {i}")
            fd, name = tempfile.mkstemp(prefix=".sessionstorm-clean-", suffix=".jsonl")  # the run folder may be read-only
            os.close(fd)
            try:
                bad = _clean_copy(f, Path(name))
                self.con.execute(f"INSERT INTO {table} {_rows_of(Path(name), i << 32)}")
            finally:
                os.unlink(name)
            self.corrupt += [{"path": str(f), "line": n, "error": e} for n, e in bad]
        if progress is not None:
            progress(sum(f.stat().st_size for f in self.files))

    def derive(self, name: str, sql: str) -> None:
        """``name`` as ``sql`` on this connection: a temporary table for a small history (read by many small
        queries, a table costs less than binding a view in each), a temporary view otherwise (no copy)."""
        self.con.execute(f"CREATE OR REPLACE TEMP {'TABLE' if self._schema is not None else 'VIEW'} {name} AS {sql}")

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
        return self.con.execute(sql, list(params)).fetchone()

    def rows(self, fields: Sequence[str], seqs: Iterable[int], batch: int = 4096) -> Iterator[tuple[Any, ...]]:
        """``(seq, *fields)`` of the records at ``seqs`` (ascending), in that order, read from their parts
        alone: a filter on ``seq`` over ``h`` reads every part (seq is computed), this one skips row groups.
        A connection of its own, so a caller may stream seqs from ``con`` meanwhile."""
        if self._reader is None:
            self._reader = self.con.cursor()
        cols = ", ".join(q(f) for f in fields)
        it = iter(seqs)
        if self._schema is not None:  # a small history: one table (the seqs as a parameter: cheaper than literals)
            while chunk := list(islice(it, batch)):
                yield from self._reader.execute(f"SELECT seq, {cols} FROM {self._schema}.h WHERE "
                                                "list_contains($1::BIGINT[], seq) ORDER BY seq", [chunk]).fetchall()
            return
        while chunk := list(islice(it, batch)):
            by_part: dict[int, list[int]] = {}
            for seq in chunk:
                k = bisect.bisect_right(self._starts, seq) - 1
                if k >= 0:
                    by_part.setdefault(k, []).append(seq - self._starts[k])
            if not by_part:
                continue
            sql = " UNION ALL ".join(
                f"SELECT {self._starts[k]}::BIGINT + file_row_number AS seq, {cols} FROM read_parquet("
                f"{lit(str(self._parts[k][0]))}, file_row_number = true) WHERE file_row_number IN ({', '.join(map(str, rows))})"
                for k, rows in by_part.items())
            yield from self._reader.execute(sql + " ORDER BY seq").fetchall()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        try:
            if self._schema is not None:  # the shared database outlives this connection: its table goes now
                self.con.execute(f"DROP SCHEMA IF EXISTS {self._schema} CASCADE")
        finally:
            self.con.close()

    def __enter__(self) -> Columns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Part:
    """One converted byte range of a history file; ``base``: the 0-based line its first line has in the file."""
    path: Path
    start: int
    end: int
    lines: int
    corrupt: list[list[Any]]  # [line within the range (1-based), error]
    base: int = 0


def columns_dir(location: str | os.PathLike[str]) -> Path:
    """``columns/`` of the run a location (run folder, its history/ or one history file) belongs to."""
    p = Path(location)
    if p.is_dir() and p.name != "history":
        return p / "columns"
    run = p.parent if not p.is_dir() else p
    return (run.parent if run.name == "history" else run) / "columns"


def cache_dirs(location: Path) -> tuple[list[Path], Path]:
    """Where parts are looked for, and where new ones go: ``columns/`` in the run folder, or a temporary
    folder when the run folder is read-only (the parts its writers made there are still used)."""
    d = columns_dir(location)
    try:
        d.mkdir(exist_ok=True)
        probe = d / f".w{os.getpid()}"
        probe.touch()
        probe.unlink()
        return [d], d
    except OSError:
        tmp = _fallback_dir(d)
        tmp.mkdir(parents=True, exist_ok=True)
        return [d, tmp], tmp


def _fallback_dir(d: Path) -> Path:
    """Where the parts of a run folder that cannot be written go."""
    tag = hashlib.sha256(str(d.parent.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "sessionstorm-columns" / tag


def part_name(src: Path, start: int, end: int) -> str:
    return f"{src.stem}.{start}-{end}"


def _probes(fh: Any, start: int, end: int) -> list[list[int]]:
    """[offset, CRC32] of PROBES windows of the range: its first and last PROBE_BYTES, the rest spread between."""
    n = end - start
    if n <= 0:
        return []
    at = sorted({start + (max(0, n - PROBE_BYTES) * k) // (PROBES - 1) for k in range(PROBES)})
    out = []
    for off in at:
        fh.seek(off)
        out.append([off, zlib.crc32(fh.read(min(PROBE_BYTES, end - off)))])
    return out


def _stamps(dirs: list[Path], src: Path) -> dict[int, list[tuple[dict[str, Any], Path]]]:
    """The stamped parts of one history file, by start: [(stamp, its .json)], longest first."""
    pattern = re.compile(re.escape(src.stem) + r"\.(\d+)-(\d+)\.json")
    found: dict[int, list[tuple[dict[str, Any], Path]]] = {}
    for d in dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            if not pattern.fullmatch(name):
                continue
            try:
                stamp = orjson.loads((d / name).read_bytes())
            except (OSError, ValueError):
                continue
            if stamp.get("format") == FORMAT and stamp.get("file") == src.name:
                found.setdefault(stamp["start"], []).append((stamp, d / name))
    for cands in found.values():
        cands.sort(key=lambda c: -c[0]["end"])
    return found


def _current(stamp: dict[str, Any], json_path: Path, fh: Any, size: int) -> bool:
    """A stamp still describes the file: its range is there, unchanged, and its part exists. A range not
    ending a line is current only while the file has not grown (the line's rest may follow)."""
    end = stamp["end"]
    if end > size or not json_path.with_suffix(".parquet").exists():
        return False
    if end < size:
        fh.seek(end - 1)
        if fh.read(1) != b"\n":
            return False
    return _probes(fh, stamp["start"], end) == stamp["probes"]


def _convert(con: duckdb.DuckDBPyConnection, location: Path, files: list[Path],
             progress: Callable[[int], None] | None) -> tuple[list[list[Part]], list[dict[str, Any]]]:
    """Each history file's parts, in order and covering it: the stamped ones still current, the
    rest (the tail, gaps, changed ranges) converted now."""
    if not files:
        return [], []
    dirs, out = cache_dirs(location)
    _sweep(out)
    all_parts: list[list[Part]] = []
    corrupt: list[dict[str, Any]] = []
    done = 0
    for f in files:
        stamps = _stamps(dirs, f)  # before the size: a stamp sealed meanwhile is then judged, not lost
        size = f.stat().st_size
        parts: list[Part] = []
        pos = lines = 0
        used: set[Path] = set()
        with open(f, "rb") as fh:
            while pos < size:
                found = next(((s, p) for s, p in stamps.get(pos, ()) if _current(s, p, fh, size)), None)
                if found is None:  # converted here: up to the next stamped part, or the end
                    nxt = min((s for s in stamps if pos < s < size), default=size)
                    stamp = convert_range(f, pos, nxt, out, con=con, progress=progress, base=done + pos)
                    json_path = out / (part_name(f, pos, nxt) + ".json")
                else:
                    stamp, json_path = found
                used.add(json_path)
                part = Part(json_path.with_suffix(".parquet"), stamp["start"], stamp["end"], stamp["lines"],
                            stamp["corrupt"], base=lines)
                parts.append(part)
                corrupt += [{"path": str(f), "line": lines + n, "error": e} for n, e in part.corrupt]
                lines += part.lines
                pos = part.end
                if progress is not None:
                    progress(done + pos)
        for cands in stamps.values():  # superseded or changed parts this check can judge: removed
            for s, p in cands:
                if p not in used and s["end"] <= size and p.parent == out:
                    p.unlink(missing_ok=True)
                    p.with_suffix(".parquet").unlink(missing_ok=True)
        all_parts.append(parts)
        done += size
    return all_parts, corrupt


def _small(location: Path, files: list[Path]) -> bool:
    """A history read into a table: at most SMALL_BYTES, and no part of it converted (by a writer or an
    earlier check: those parts are used as they are)."""
    if sum(f.stat().st_size for f in files) > SMALL_BYTES:
        return False
    d = columns_dir(location)
    return not any(_stamps([d, _fallback_dir(d)], f) for f in files)


def _rows_of(f: Path, base: int) -> str:
    """SQL: the records of one history file in file order, ``seq`` = base + row."""
    return (f"SELECT * EXCLUDE (ordinality), {base}::BIGINT + ordinality - 1 AS seq FROM "
            f"read_json({lit(str(f))}, format='newline_delimited', columns={_STRUCT}) WITH ORDINALITY")


STALE_TMP_S = 600  # a conversion's temporary file untouched this long: its process died mid-way


def _sweep(out: Path) -> None:
    """Remove the temporary files of conversions cut short (a writer killed mid-conversion)."""
    now = time.time()
    for p in out.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if now - p.stat().st_mtime > STALE_TMP_S:
                p.unlink()


def convert_range(src: Path, start: int, end: int, out: Path, lines: int | None = None,
                  con: duckdb.DuckDBPyConnection | None = None, progress: Callable[[int], None] | None = None,
                  base: int = 0) -> dict[str, Any]:
    """The bytes [start, end) of a history file (whole lines) to ``out/<stem>.<start>-<end>.parquet`` and its
    stamp (written last, atomically); returns the stamp. The writers call it on each sealed segment, the
    check on what no writer converted."""
    cpu = time.thread_time()
    own = con is None
    if own:
        con = connect()
    name = part_name(src, start, end)
    tag = f"{os.getpid()}.{next(_TAGS)}"  # no threading call: this runs in a writer's OS thread under gevent too
    chunk = out / f".{name}.{tag}.jsonl.tmp"
    part = out / f"{name}.parquet"
    try:
        with open(src, "rb") as fh:
            # A whole file is read in place (a finished run, checked cold: no copy); if it grew meanwhile,
            # DuckDB may have read past `end`, and the range is copied and converted again.
            whole = start == 0 and end == os.fstat(fh.fileno()).st_size
            newlines = _copy_range(fh, start, end, None if whole else chunk)
            probes = _probes(fh, start, end)
            with _polling(con, base, end - start, progress) if progress is not None else contextlib.nullcontext():
                bad = _convert_file(con, src if whole else chunk, part, tag, out)
            if whole and os.fstat(fh.fileno()).st_size != end:
                newlines = _copy_range(fh, start, end, chunk)
                bad = _convert_file(con, chunk, part, tag, out)
        stamp = {"format": FORMAT, "file": src.name, "start": start, "end": end,
                 "lines": newlines if lines is None else lines, "corrupt": bad, "probes": probes,
                 "cpu_s": round(time.thread_time() - cpu, 4)}  # what it cost (one thread: DuckDB runs in it)
        tmp = out / f".{name}.{tag}.json.tmp"
        tmp.write_bytes(orjson.dumps(stamp))
        os.replace(tmp, out / f"{name}.json")
        return stamp
    finally:
        chunk.unlink(missing_ok=True)
        if own:
            con.close()


def _copy_range(fh: Any, start: int, end: int, dest: Path | None) -> int:
    """Copy [start, end) of an open file to ``dest`` (None: only count); the number of line ends in it."""
    fh.seek(start)
    left, newlines = end - start, 0
    with open(dest, "wb") if dest is not None else contextlib.nullcontext() as out:
        while left > 0:
            block = fh.read(min(COPY_BLOCK, left))
            if not block:
                break
            newlines += block.count(b"\n")
            if out is not None:
                out.write(block)
            left -= len(block)
    return newlines


def _copy(con: duckdb.DuckDBPyConnection, src: Path, dest: Path, tag: str) -> None:
    """One JSON-lines file to Parquet; rows keep the file's order (DuckDB preserves insertion order)."""
    tmp = dest.with_name(f".{dest.name}.{tag}.tmp")
    con.execute(f"COPY (SELECT * FROM read_json({lit(str(src))}, format='newline_delimited', columns={_STRUCT})) "
                f"TO {lit(str(tmp))} "
                f"(FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP}, COMPRESSION uncompressed)")
    os.replace(tmp, dest)


def _convert_file(con: duckdb.DuckDBPyConnection, f: Path, part: Path, tag: str, scratch: Path) -> list[list[Any]]:
    """Convert one file; its corrupt lines [line number, error], found only when DuckDB refuses it."""
    try:
        _copy(con, f, part, tag)
        untyped = con.execute(f"SELECT count(*) FROM read_parquet({lit(str(part))}) WHERE type IS NULL").fetchone()[0]
        if not untyped:
            return []
    except duckdb.Error:
        pass
    # Slow path, for this range only: name every bad line, convert the good ones.
    clean = scratch / f".{part.stem}.{tag}.clean.tmp"  # beside the parts: the history's folder may be read-only
    try:
        bad = _clean_copy(f, clean)
        _copy(con, clean, part, tag)
    finally:
        clean.unlink(missing_ok=True)
    return bad


def _clean_copy(f: Path, clean: Path) -> list[list[Any]]:
    """The good lines of ``f`` copied to ``clean``; the bad ones as [line number, error]."""
    bad: list[list[Any]] = []
    with open(f, "rb") as fh, open(clean, "wb") as out:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            why = _invalid(line)
            if why is None:
                out.write(line if line.endswith(b"\n") else line + b"\n")
            else:
                bad.append([lineno, f"{why}: {line[:80]!r}"])
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
    """Progress inside one large range: DuckDB's own query progress, read from a side thread."""

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
