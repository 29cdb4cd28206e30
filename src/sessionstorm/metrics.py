"""Prometheus metrics for soaks (``--metrics-port``): watch and alert on a nightly run like
on any service.

Own CollectorRegistry (no process/GC collectors of the host program, no clash with a
target imported in-process), served on 127.0.0.1 by default from a daemon thread
(a greenlet under Locust's monkey-patching).

>>> m = Metrics(0)                                    # doctest: +SKIP
>>> m.observe_op({"kind": "chat", "outcome": "ok", "invoke_mono": 1.0, "complete_mono": 1.2})  # doctest: +SKIP
>>> m.anomaly("crosstalk"); m.fault("postgres", "pause", True)  # doctest: +SKIP
>>> m.close()                                         # doctest: +SKIP
"""
from __future__ import annotations

import errno
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from sessionstorm.errors import ConfigError

# Gateway latencies: a cached session answers in ms, an LLM stream can take a minute.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError("metrics-port", port, "a port number 0-65535 (0 picks a free one)",
                              "pass --metrics-port, e.g. --metrics-port 9464")
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.ops = Counter("sessionstorm_ops", "Operations finished, by kind and outcome (ok, fail, info)",
                           ["kind", "outcome"], registry=r)
        self.verified = Counter("sessionstorm_verified_ops", "Operations verified ok; rate() is the verified-op rate",
                                ["kind"], registry=r)
        self.latency = Histogram("sessionstorm_op_latency_seconds", "Invoke to complete, by kind",
                                 ["kind"], buckets=LATENCY_BUCKETS, registry=r)
        self.anomalies = Counter("sessionstorm_anomalies", "Anomalies found, by code", ["code"], registry=r)
        self.faults = Gauge("sessionstorm_fault_windows_active", "Fault windows open now",
                            ["component", "action"], registry=r)
        self._op_children: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
        self._anomaly_children: dict[str, Any] = {}
        self._open_faults: dict[tuple[str, str], int] = {}
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=r)
        except OSError as e:
            why = "in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
            raise ConfigError("metrics-port", port, f"a free port on {host} ({why})",
                              "pass another --metrics-port, or 0 for any free port") from None
        except OverflowError:  # defensive: the range check above should catch it first
            raise ConfigError("metrics-port", port, "a port number 1-65535", "pass --metrics-port") from None
        self.host, self.port = host, self._server.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def observe_op(self, op: Mapping[str, Any]) -> None:
        """Count one finished op record (history schema: kind, outcome, invoke_mono,
        complete_mono). Hot path: the labelled children are looked up once per pair."""
        kind, outcome = op.get("kind") or "unknown", op.get("outcome") or "info"
        children = self._op_children.get((kind, outcome))
        if children is None:
            children = self._op_children[(kind, outcome)] = (
                self.ops.labels(kind, outcome), self.latency.labels(kind),
                self.verified.labels(kind) if outcome == "ok" else None)
        count, latency, verified = children
        count.inc()
        if verified is not None:
            verified.inc()
        t0, t1 = op.get("invoke_mono"), op.get("complete_mono")
        if t0 is not None and t1 is not None and t1 >= t0:
            latency.observe(t1 - t0)

    def anomaly(self, code: str, count: int = 1) -> None:
        child = self._anomaly_children.get(code)
        if child is None:
            child = self._anomaly_children[code] = self.anomalies.labels(code)
        child.inc(count)

    def fault(self, component: str, action: str, active: bool) -> None:
        """A fault window opened (active) or closed; overlapping windows of one kind add up."""
        key = (component, action)
        n = max(0, self._open_faults.get(key, 0) + (1 if active else -1))
        self._open_faults[key] = n
        self.faults.labels(component, action).set(n)

    def close(self) -> None:
        server, self._server = getattr(self, "_server", None), None
        if server is not None:
            server.shutdown()
            server.server_close()
            self._thread.join(timeout=5)

    def __enter__(self) -> Metrics:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
