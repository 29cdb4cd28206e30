"""``sessionstorm check-profile FILE --probe``: one operation of each kind, shown field by field.

Starts what the profile needs through `sessionstorm.run.Run` (the stack and the launched
service, or the running one), makes one key, runs each invariant query once, then sends
one operation of each kind the profile declares (in the order create, write, read-back,
chat, message, delete), each through the one exchange model, and reports per operation:
the request sent (key redacted), the status, every extracted field, the canary's round
trip and what is missing, with the fix.
"""
from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from sessionstorm.profile.schema import FAMILIES, Profile
from sessionstorm.tls import shared_ssl_context

ORDER = ("create", "write", "read_back", "chat", "message", "delete")
FIELDS = ("session_seen", "values", "canaries_seen", "model_served", "request_id_seen", "turn", "server_id", "chunks")


@dataclass
class Probe:
    name: str                            # [ops.NAME] or [paths] NAME
    family: str
    request: str = ""
    status: int | None = None
    outcome: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    round_trip: str = ""
    problems: list[str] = field(default_factory=list)  # what is missing, with the fix
    reply: str = ""
    skipped: str = ""                    # not tried, and why (an operation it needs failed)

    @property
    def ok(self) -> bool:
        return not self.problems

    def table(self) -> list[str]:
        if self.skipped:
            return [f"== {self.name} ({self.family}) SKIPPED: {self.skipped}"]
        rows = [f"== {self.name} ({self.family}) {'ok' if self.ok else 'FAILED'}",
                f"  request   {self.request}", f"  status    {self.status} ({self.outcome})"]
        rows += [f"  {k:<9} {v!r}" for k, v in self.fields.items() if v not in (None, [], "")]
        rows.append(f"  canary    {self.round_trip}")
        if self.reply:
            rows.append(f"  reply     {self.reply}")
        rows += [f"  MISSING   {p}" for p in self.problems]
        return rows


def _where(profile: Profile, kind: str) -> str:
    spec = profile.op_for(kind)
    return f"[ops.{spec.name}]" if spec is not None else f"[paths] {kind}"


def _kinds(profile: Profile) -> list[str]:
    """The families to probe: the declared ones, else the [paths] of the profile's flavors."""
    if profile.ops:
        fams = {s.kind for s in profile.ops.values()}
    else:
        fams = {f for f, (_, flavor) in FAMILIES.items() if flavor in profile.target.flavors}
    return [f for f in ORDER if f in fams]


def _describe_request(req: Any, key: str | None) -> str:
    headers = {k: ("<key>" if key and key in v else v) for k, v in req.headers.items()}
    body = req.body.decode("utf-8", "replace") if isinstance(req.body, bytes) else ""
    if key:
        body = body.replace(key, "<key>")
    return f"{req.method} {req.path} headers={headers}" + (f" body={body[:200]}" if body else "")


def probe(profile: Profile, run: Any, say: Any = print) -> list[Probe]:
    """Send one op of each kind against ``run.target`` (a started Run); the results, in order."""
    import httpx

    from sessionstorm.exchange import Exchange
    from sessionstorm.workload import gateway, snapshots
    from sessionstorm.workload.prompts import PromptMaker

    target = run.target
    results: list[Probe] = []
    for snap in asyncio.run(snapshots.take(target.dsn, profile.invariants, "probe")):
        p = Probe(f"[invariants] {snap['invariant']}", "invariant", request=snap["sql"].strip().splitlines()[0][:100])
        if snap["error"]:
            p.problems.append(f"the query failed: {snap['error'][:200]}; fix invariants.{snap['invariant']} "
                              f"(run it with psql against {run.profile.database.dsn})")
        else:
            p.fields["rows"] = len(snap["rows"] or [])
        results.append(p)
    keys = run.keys(["probe"]) if profile.auth.header else {}
    key = keys.get("probe")
    prompts = PromptMaker(profile.target.llm, seed=1)
    session: str | None = None
    written: dict[str, str] = {}  # canary -> op name that wrote it
    with httpx.Client(base_url=target.url, timeout=profile.target.timeout_s, verify=shared_ssl_context()) as client:
        def send(req: Any, stream: bool = False) -> dict[str, Any]:
            ex = Exchange(req)
            try:
                if stream:
                    with client.stream(req.method, req.path, headers=req.headers, content=req.body) as r:
                        ex.begin(r.status_code, r.headers)
                        for data in r.iter_bytes():
                            ex.feed(data, time.monotonic())
                        ex.end_stream()
                else:
                    r = client.request(req.method, req.path, headers=req.headers, content=req.body)
                    ex.reply(r.status_code, r.headers, r.content)
            except httpx.HTTPError as e:
                ex.transport(e)
            return ex.finish()

        for family in _kinds(profile):
            kind = FAMILIES[family][0]
            where = _where(profile, kind)
            if family in ("write", "read_back", "delete") and session is None:
                results.append(Probe(where, family, skipped="no session to use: the create operation failed"))
                continue
            model = profile.models.names[0] if profile.models.names else None
            req = _build(profile, family, prompts, key, session or "", model or "")
            p = Probe(where, family, request=_describe_request(req, key))
            op = send(req)
            p.status, p.outcome = op.get("status"), op.get("outcome")
            p.fields = {k: op.get(k) for k in FIELDS}
            p.reply = (op.get("reply_excerpt") or "")[:160]
            canary = op["canaries_sent"][0]
            _judge(p, op, family, where, canary, written)
            if family == "create" and op.get("outcome") == "ok" and op.get("session_seen"):
                session = op["session_seen"]
            if family == "write" and op.get("outcome") == "ok":
                written[canary] = where
            results.append(p)
            if family == "chat" and profile.op_for("chat") is not None and profile.op_for("chat").stream is not None:
                sreq = gateway.build_chat(profile, prompts, key=key, model=model or "", user="probe", stream=True)
                sp = Probe(f"{where} stream", "chat_stream", request=_describe_request(sreq, key))
                sop = send(sreq, stream=True)
                sp.status, sp.outcome = sop.get("status"), sop.get("outcome")
                sp.fields = {k: sop.get(k) for k in FIELDS}
                sp.reply = (sop.get("reply_excerpt") or "")[:160]
                _judge(sp, sop, "chat", f"{where} stream", sop["canaries_sent"][0], written)
                results.append(sp)
    for p in results:
        for row in p.table():
            say(row)
    return results


def _build(profile: Profile, family: str, prompts: Any, key: str | None, session: str, model: str) -> Any:
    from sessionstorm.workload import conversation, gateway, observe

    if family == "create":
        return observe.build_create(profile, key=key, user="probe")
    if family == "write":
        return observe.build_observe(profile, prompts, session, key=key, user="probe")
    if family == "read_back":
        return observe.build_read(profile, session, key=key, user="probe")
    if family == "delete":
        return observe.build_delete(profile, session, key=key, user="probe")
    if family == "chat":
        return gateway.build_chat(profile, prompts, key=key, model=model, user="probe")
    return conversation.build_message(profile, prompts, "probe-user", key=key)


def _judge(p: Probe, op: dict[str, Any], family: str, where: str, canary: str, written: dict[str, str]) -> None:
    """What the op lacks, each with the fix; the canary's round trip."""
    if op.get("outcome") != "ok":
        status = op.get("status")
        if status is None:
            p.problems.append(f"no reply ({op.get('transport')}: {op.get('error')}); check target.base_url / the "
                              f"service's log")
        elif op.get("missing"):
            p.problems.append(f"{op.get('error')}; the reply was {p.reply!r}: fix {where} {op['missing']}")
        elif 200 <= status < 300:
            p.problems.append(f"{op.get('error')}: add {status} to {where} ok_status")
        else:
            p.problems.append(f"HTTP {status}: {op.get('error')}; fix {where} method/path/body (or auth/keys)")
        p.round_trip = f"{canary} sent, reply not usable"
        return
    seen = op.get("canaries_seen") or []
    if family == "create":
        p.round_trip = "not applicable (create)"
        if not op.get("session_seen"):
            p.problems.append(f"no session id in the reply {p.reply!r}: set {where} session_id to a JMESPath "
                              f"that picks it (e.g. \"id\" or \"thread.id\")")
    elif family == "write":
        p.round_trip = f"{canary} written (looked for in the read-back)"
    elif family == "read_back":
        values = op.get("values") or []
        found = [c for c in written if c in values]
        p.round_trip = (f"{', '.join(found)} written by {', '.join(written[c] for c in found)} -> found in values"
                        if found else f"written {', '.join(written) or 'nothing'} -> NOT found in values {values}")
        if written and not found:
            p.problems.append(f"the written canary is not among the values {values}: fix {where} canaries (a "
                              f"JMESPath to the list of written values, e.g. \"items[].text\"); reply {p.reply!r}")
    elif family in ("chat", "message"):
        if canary in seen:
            p.round_trip = f"{canary} sent -> found in the reply text"
        else:
            p.round_trip = f"{canary} sent -> NOT found (seen: {seen})"
            p.problems.append(f"the canary sent is not in the reply text: fix {where} text (a JMESPath to the "
                              f"answer's text) or the body template (send {{prompt}}); reply {p.reply!r}")
    else:
        p.round_trip = "not applicable (delete)"


def run_probe(path: str | None, sets: dict[str, str], backend: str | None, say: Any) -> int:
    """Validate, start, probe, stop; 0 when every operation works, 2 otherwise (one line each)."""
    from sessionstorm.run import Run

    with tempfile.TemporaryDirectory(prefix="sessionstorm-probe-") as tmp:
        r = Run("probe", driver="probe", profile=path, sets=sets, backend=backend, reports_dir=tmp,
                progress=lambda m: say(m, err=True))
        r.start()
        try:
            results = probe(r.profile, r, say)
        finally:
            r.finish()
    failed = [p for p in results if not p.ok]
    for p in failed:
        say(f"sessionstorm: error: {p.name}: {p.problems[0]}", err=True)
    skipped = [p for p in results if p.skipped]
    if not failed and not skipped:
        say(f"every operation works ({len(results)} probed)")
    return 2 if failed or skipped else 0
