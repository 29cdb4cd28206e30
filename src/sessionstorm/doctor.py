"""``sessionstorm doctor URL``: is every address behind the URL's name the same server?

Exit 0: consistent; 1: SPLIT_ENDPOINT (or nothing answered); 2: bad input (one line).
"""
from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

import click

from sessionstorm.endpoints import (
    DEFAULT_CONNECTIONS,
    FIELDS,
    asurvey,
    compare,
    label_variants,
    resolve,
    split_url,
    variant_of,
)
from sessionstorm.errors import ConfigError

LABELS = {  # what each fingerprint field is, as printed
    "ready": "ready: status of GET {ready_path}",
    "identity": "identity: the {identity_header} header",
    "server": "server: the Server header",
    "not_found": "not_found: GET of a random path (status sha256 body)",
    "session_not_found": "session_not_found: GET {session_path} for a random id",
    "openapi": "openapi: sha256 of /openapi.json (or its status)",
}


def parse_resolve(values: tuple[str, ...]) -> dict[str, list[str]]:
    """``NAME=ADDR,ADDR`` (repeatable) -> ``{"NAME": ["ADDR", "ADDR"]}``; addresses are checked by resolve()."""
    out: dict[str, list[str]] = {}
    for value in values:
        name, sep, addrs = value.partition("=")
        ips = [a.strip() for a in addrs.split(",") if a.strip()]
        if not sep or not name.strip() or not ips:
            raise ConfigError("--resolve", value, "NAME=ADDR[,ADDR...] like localhost=::1,127.0.0.1",
                              "write the name, '=', then comma-separated IP addresses")
        out.setdefault(name.strip(), []).extend(ips)
    return out


def _show(value: Any) -> str:
    if isinstance(value, dict):  # a probed body
        return f"{value['status']} {value['sha256']} {value['excerpt']!r}"
    return "-" if value is None else str(value)


def render(url: str, fingerprints: list[dict[str, Any]], findings: list[dict[str, Any]], labels: dict[str, str]) -> str:
    """Per address: how many connections answered, then one column per server (A, B, ...) seen there."""
    variants = label_variants(fingerprints)
    by_address: dict[str, list[dict[str, Any]]] = {}
    for fp in fingerprints:
        by_address.setdefault(fp["address"], []).append(fp)
    lines: list[str] = []
    for address, fps in by_address.items():
        seen: dict[str, list[dict[str, Any]]] = {}
        for fp in fps:
            if "error" not in fp:
                seen.setdefault(variant_of(fp, variants), []).append(fp)
        lines.append(f"{address}: {sum(map(len, seen.values()))} of {len(fps)} connections answered"
                     + "".join(f"; server {v} on {len(group)}" for v, group in seen.items()))
        failed = [fp for fp in fps if "error" in fp]
        if failed:
            lines.append(f"  {len(failed)} connections failed, e.g. {failed[0]['error']}")
        for f in FIELDS:
            if any(group[0].get(f) is not None for group in seen.values()):
                lines.append(f"  {labels[f]:<60} "
                             + "  |  ".join(f"{v}: {_show(group[0].get(f))}" for v, group in seen.items()))
    lines.append("")
    if findings:
        for finding in findings:
            lines += [f"SPLIT_ENDPOINT ({finding['severity']}): {finding['detail']}", f"fix: {finding['fix']}"]
    elif not variants:
        lines.append(f"UNREACHABLE: no address of {url} answered")
    else:
        lines.append("OK: every address answers as the same server")
    return "\n".join(lines)


@click.command()
@click.argument("url")
@click.option("--resolve", "resolve_", multiple=True, metavar="NAME=ADDR,ADDR",
              help="pin a name to addresses, like curl --resolve (repeatable)")
@click.option("--allow-remote", is_flag=True, help="allow non-loopback addresses")
@click.option("--ready-path", default="/healthz", show_default=True)
@click.option("--session-path", default=None, help="GET template for a missing session, e.g. /sessions/{session_id}")
@click.option("--identity-header", default=None, help="a header naming the build, if the service sends one")
@click.option("--connections", type=click.IntRange(1, 64), default=DEFAULT_CONNECTIONS, show_default=True,
              help="fresh connections per address (SO_REUSEPORT splits show up across them)")
@click.option("--timeout", type=float, default=2.0, show_default=True, help="seconds per request")
@click.option("--cacert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CA bundle for an https URL (default: the system's)")
def doctor(url: str, resolve_: tuple[str, ...], allow_remote: bool, ready_path: str, session_path: str | None,
           identity_header: str | None, connections: int, timeout: float, cacert: str | None) -> int:
    """Fingerprint every address of URL's host over fresh connections; compare."""
    _, host, port = split_url(url)
    addresses = resolve(url, parse_resolve(resolve_), allow_remote=allow_remote)
    t0 = time.monotonic()
    fps = asyncio.run(asurvey(url, addresses, connections=connections, ready_path=ready_path,
                              identity_header=identity_header, session_path=session_path, timeout=timeout,
                              verify=ssl.create_default_context(cafile=cacert) if cacert else None))
    findings = compare(url, fps)
    labels = {f: text.format(ready_path=ready_path, identity_header=identity_header, session_path=session_path)
              for f, text in LABELS.items()}
    click.echo(f"{host}:{port} -> {', '.join(a.ip for a in addresses)}; {connections} fresh connections each, "
               f"probed in {time.monotonic() - t0:.2f} s\n")
    click.echo(render(url, fps, findings, labels))
    return 1 if findings or not any("error" not in fp for fp in fps) else 0
