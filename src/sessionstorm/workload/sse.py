"""Incremental Server-Sent Events parsing and per-chunk stream measurements.

`SSEDecoder` turns bytes, in whatever pieces the network delivers, into event data
strings (a ``data:`` field split over a read boundary is joined correctly).
`StreamStats` keeps, per content chunk, its canaries and arrival time, from which
come time to first token, inter-chunk gaps and the chunk count.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sessionstorm.canary import find_canaries, parse_chunk_tag


class SSEDecoder:
    """Feed bytes, get the ``data`` of each complete event (multi-line data joined by newlines)."""

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        self._buf += chunk
        events: list[str] = []
        while True:
            # Lines end in \n, \r\n or \r; a lone trailing \r may be half of \r\n: wait.
            i = min((p for p in (self._buf.find(b"\n"), self._buf.find(b"\r")) if p >= 0), default=-1)
            if i < 0 or (self._buf[i:i + 1] == b"\r" and i == len(self._buf) - 1):
                return events
            line = self._buf[:i].decode("utf-8", "replace")
            step = 2 if self._buf[i:i + 2] == b"\r\n" else 1
            self._buf = self._buf[i + step:]
            if line == "":
                if self._data:
                    events.append("\n".join(self._data))
                    self._data = []
            elif line.startswith("data"):
                name, _, value = line.partition(":")
                if name == "data":
                    self._data.append(value[1:] if value.startswith(" ") else value)
            # comments (":...") and other fields (event, id, retry) carry nothing we record

    def close(self) -> list[str]:
        """Events left when the stream ends without a final blank line."""
        events = self.feed(b"\n\n") if self._buf or self._data else []
        self._buf = b""
        return events


@dataclass
class StreamStats:
    """Content chunks of one stream, as seen by the client."""

    t0: float
    texts: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    chunk_canaries: list[list[str]] = field(default_factory=list)

    def add(self, text: str, now: float) -> None:
        tagged = parse_chunk_tag(text)
        self.texts.append(text)
        self.times.append(now)
        # An untagged chunk (a real LLM) still counts canaries it happens to contain.
        self.chunk_canaries.append(list(tagged) if tagged is not None else find_canaries(text))

    @property
    def chunks(self) -> int:
        return len(self.texts)

    @property
    def ttft(self) -> float | None:
        """Seconds from invoke to the first content chunk."""
        return round(self.times[0] - self.t0, 6) if self.times else None

    @property
    def gaps(self) -> list[float]:
        """Seconds between consecutive content chunks."""
        return [round(b - a, 6) for a, b in zip(self.times, self.times[1:])]

    @property
    def text(self) -> str:
        return "".join(self.texts)
