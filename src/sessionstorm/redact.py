"""Secrets never recorded: replace every API key, admin token and DSN password of a run
with ``<redacted:xxxxxxxx>`` wherever it would be written or printed.

The tag is the first 8 hex digits of the secret's SHA-256, the same hash as
``history.fingerprint`` (``fp_`` + 12 hex digits), so a redacted mention can be matched
to the op's ``key`` field and two mentions of one key to each other.

Each secret is also matched in the forms it takes on the wire: percent-encoded (a DSN or
query string) and JSON-escaped. All forms go into one precompiled alternation, factored
as a trie (see ``_trie_pattern``), longest match first.

>>> r = Redactor(["sk-live-0123456789", dsn_password("postgresql://app:s3cr%40t@db/app")])
>>> r.text("key sk-live-0123456789, password s3cr@t, in a DSN s3cr%40t")
'key <redacted:74978375>, password <redacted:d9269d23>, in a DSN <redacted:d9269d23>'
>>> redact_dsn("redis://:hunter22@127.0.0.1:6379/0")
'redis://:<redacted>@127.0.0.1:6379/0'
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

MIN_LENGTH = 4  # shorter "secrets" would shred ordinary text; they are listed in .skipped


def tag(secret: str) -> str:
    return f"<redacted:{hashlib.sha256(secret.encode()).hexdigest()[:8]}>"


# libpq's keyword form: host=db password='it\\'s' dbname=app (quotes, backslashes escaped)
_KV_PASSWORD = re.compile(r"""(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']+)""")


def dsn_password(dsn: str) -> str | None:
    """The (decoded) password of a postgres/redis DSN, URL or libpq keyword form, or None."""
    if "://" not in dsn:
        m = _KV_PASSWORD.search(dsn)
        if not m:
            return None
        v = m.group(2)
        return re.sub(r"\\(.)", r"\1", v[1:-1]) if v.startswith("'") else v
    try:
        password = urlsplit(dsn).password
    except ValueError:
        return None
    return unquote(password) if password else None


def redact_dsn(dsn: str) -> str:
    """The DSN with its password replaced by ``<redacted>`` (user, host, port, db kept)."""
    if "://" not in dsn:
        return _KV_PASSWORD.sub(lambda m: m.group(1) + "<redacted>", dsn)
    try:
        parts = urlsplit(dsn)
        password = parts.password
    except ValueError:
        return dsn
    if not password:
        return dsn
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return parts._replace(netloc=f"{user}:<redacted>@{hostport}").geturl()


def _forms(secret: str) -> set[str]:
    """How one secret can appear: as is, percent-encoded, JSON-escaped, libpq-quoted."""
    return {secret, quote(secret, safe=""), quote(secret), json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1], secret.replace("\\", "\\\\").replace("'", "\\'")}


def _trie_pattern(words: Iterable[str]) -> str:
    """One alternation with shared prefixes factored out (``sk\\-(?:a...|b...)``): keys
    that share a prefix cost one comparison per character, not one per key. Longer words
    win where one is a prefix of another, so a secret containing another is replaced whole."""
    trie: dict[str, Any] = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = True

    def build(node: dict[str, Any]) -> str:
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(trie)


class Redactor:
    """Redacts a fixed set of secrets from str, bytes and nested dict/list/tuple values
    (dict keys are left as they are). With no secrets every call returns its input."""

    def __init__(self, secrets: Iterable[str | bytes | None] = (), min_length: int = MIN_LENGTH) -> None:
        found: dict[str, str] = {}  # form -> tag
        self.skipped: list[str] = []
        for s in secrets:
            if s is None:
                continue
            s = s.decode() if isinstance(s, bytes) else str(s)
            if len(s) < min_length:
                if s:
                    self.skipped.append(s)
                continue
            t = tag(s)
            for form in _forms(s):
                found.setdefault(form, t)
        self.count = len({t for t in found.values()})
        self._tags = found
        self._btags = {k.encode(): v.encode() for k, v in found.items()}
        self._re = re.compile(_trie_pattern(found)) if found else None
        self._bre = re.compile(_trie_pattern(found).encode()) if found else None

    def __bool__(self) -> bool:
        return self._re is not None

    def text(self, s: str) -> str:
        # Called on every op's excerpts: a search that finds nothing (the usual case) is
        # cheaper than a sub, and the replacement callback is made once, not per call.
        if self._re is None or self._re.search(s) is None:
            return s
        return self._re.sub(self._tag_of, s)

    def _tag_of(self, m: re.Match[str]) -> str:
        return self._tags[m.group()]

    def bytes(self, b: bytes) -> bytes:
        if self._bre is None:
            return b
        return self._bre.sub(lambda m: self._btags[m.group()], b)

    def __call__(self, value: Any) -> Any:
        """Any value: str and bytes redacted, containers rebuilt, everything else as is."""
        if self._re is None:
            return value
        return self._walk(value)

    def _walk(self, v: Any) -> Any:
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, (bytes, bytearray)):
            return self.bytes(bytes(v))
        if isinstance(v, dict):
            return {k: self._walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self._walk(x) for x in v]
        if isinstance(v, tuple):
            return tuple(self._walk(x) for x in v)
        return v


class RedactFilter(logging.Filter):
    """Redacts a log record's final message (after %-formatting), for console handlers:
    ``handler.addFilter(RedactFilter(redactor))``."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if self.redactor:
            record.msg, record.args = self.redactor.text(record.getMessage()), None
        return True
