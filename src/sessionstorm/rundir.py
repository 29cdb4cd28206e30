"""The folder every run leaves behind: ``reports/<scenario>/<timestamp>/``.

Layout::

    run.json        what was run: scenario, users, duration, target (keys redacted), started
    history/*.jsonl one history file per process (see sessionstorm.history)
    results.json    the checker's verdict: {"valid": true|false|"unknown", "anomalies": [...], ...}
    run.log         the run's log
    report.html     the rendered report

``reports/latest`` (and ``reports/<scenario>/latest``) point at the newest run.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

DEFAULT_ROOT = Path(os.environ.get("SESSIONSTORM_REPORTS", "reports"))


class RunDir:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, scenario: str, root: str | os.PathLike[str] | None = None) -> RunDir:
        root = Path(root) if root is not None else DEFAULT_ROOT
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        base = root / scenario / stamp
        path, n = base, 1
        while True:
            try:
                path.mkdir(parents=True)
                break
            except FileExistsError:  # two runs in one second: suffix, never overwrite
                n += 1
                path = base.with_name(f"{stamp}-{n}")
        (path / "history").mkdir()
        run = cls(path)
        for link in (root / "latest", root / scenario / "latest"):
            _point(link, path)
        return run

    @property
    def history_dir(self) -> Path:
        return self.path / "history"

    def history_path(self, process: str) -> Path:
        return self.history_dir / f"{process}.jsonl"

    def write_json(self, name: str, data: Any) -> Path:
        """Write atomically: a reader never sees half a results.json."""
        target = self.path / name
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str))
        os.replace(tmp, target)
        return target

    def read_json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text())


def _point(link: Path, target: Path) -> None:
    """Repoint a `latest` symlink atomically (relative, so the reports folder can move)."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}")
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.path.relpath(target, link.parent))
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)
