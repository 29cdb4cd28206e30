"""A minimal gateway written against the proxy-router API only, as seed 000's gateway uses it.

It knows nothing of the stub: it reads the wire names the router sends (``Id``, ``Name``,
``ID``/``Bid``/``Score``, ``ModelAgentId``, ``BidID``, ``EndsAt``, ``ClosedAt``) and walks
models → rated bids → bid → open session → chat with the ``session_id`` header → close.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

import httpx

HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")


class GatewayError(Exception):
    pass


@dataclass
class Session:
    id: str
    model_id: str
    bid_id: str
    ends_at: int


class RouterGateway:
    def __init__(self, router_url: str, user: str, password: str) -> None:
        self.http = httpx.Client(base_url=router_url, auth=(user, password), timeout=30)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kw: object) -> dict:
        r = self.http.request(method, path, **kw)  # type: ignore[arg-type]
        if r.status_code != 200:
            raise GatewayError(f"{method} {path}: HTTP {r.status_code} {r.text[:200]}")
        return r.json()

    def model_id(self, name: str) -> str:
        for m in self._call("GET", "/blockchain/models")["models"]:
            if m["Name"] == name and not m["IsDeleted"]:
                if not HEX32.match(m["Id"]):  # a gateway that validates ids, as seed 000's does
                    raise GatewayError(f"model {name}: id {m['Id']!r} is not a 32-byte hex id")
                return m["Id"]
        raise GatewayError(f"no model named {name!r}")

    def open_session(self, model_id: str, seconds: int = 600) -> Session:
        rated = self._call("GET", f"/blockchain/models/{model_id}/bids/rated")["bids"]
        if not rated:
            raise GatewayError(f"no bids for {model_id}")
        best = max(rated, key=lambda b: b["Score"])
        bid = self._call("GET", f"/blockchain/bids/{best['ID']}")["bid"]
        if bid["ModelAgentId"] != model_id or int(bid["PricePerSecond"]) <= 0:
            raise GatewayError(f"bid {best['ID']} does not serve {model_id}")
        sid = self._call("POST", f"/blockchain/bids/{best['ID']}/session", json={"sessionDuration": seconds})["sessionID"]
        s = self._call("GET", f"/blockchain/sessions/{sid}")["session"]
        if s["BidID"] != best["ID"] or s["ClosedAt"] != 0 or s["EndsAt"] <= time.time():
            raise GatewayError(f"session {sid} is not open on bid {best['ID']}: {s}")
        return Session(sid, s["ModelAgentId"], s["BidID"], s["EndsAt"])

    def chat(self, session: Session, prompt: str, stream: bool = False) -> str:
        headers = {"session_id": session.id, "model_id": session.model_id}
        body = {"messages": [{"role": "user", "content": prompt}], "stream": stream}
        if not stream:
            return self._call("POST", "/v1/chat/completions", json=body, headers=headers)["choices"][0]["message"]["content"]
        parts = []
        with self.http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
            if r.status_code != 200:
                raise GatewayError(f"chat stream: HTTP {r.status_code} {r.read()[:200]!r}")
            for line in r.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    event = json.loads(line[6:])
                    if "error" in event:
                        raise GatewayError(f"chat stream: {event['error']}")
                    parts += [c["delta"].get("content") or "" for c in event["choices"]]
        return "".join(parts)

    def close_session(self, session: Session) -> str:
        return self._call("POST", f"/blockchain/sessions/{session.id}/close")["tx"]
