"""The proxy-router mode over real HTTP: every reply against the router's own swagger (with
the names the router really sends), a minimal gateway written against that API only, Basic
auth, gin's 404, the shared reply machinery (echo, faults, crosstalk), and bad input."""
from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from router_gateway import GatewayError, RouterGateway
from stub_process import AUTH, FAST, start_provider, stop_provider

from sessionstorm.canary import canary_for, find_canaries, new_op_id, parse_echo
from sessionstorm.provider.catalog import HEX32, parse_models

SWAGGER = json.loads((Path(__file__).parent / "data" / "proxy_router_swagger.json").read_text())

# Model, Bid, ScoredBid and Session are Go structs without JSON tags
# (proxy-router/internal/blockchainapi/structs/{model,bid,session}.go): encoding/json writes
# the Go field names, while swag wrote camelCase into the swagger. The node's own UI reads the
# Go names too (ui-desktop/src/main/src/client/cowork-marketplace-sessions.ts at the same
# commit: session.Id, ModelAgentId, EndsAt, ClosedAt, User; model.Id, ModelType, Tags, IsDeleted).
# swagger name -> wire name:
WIRE_NAMES: dict[str, dict[str, str]] = {
    "structs.Model": {"id": "Id", "ipfsCID": "IpfsCID", "fee": "Fee", "stake": "Stake", "owner": "Owner",
                      "name": "Name", "tags": "Tags", "createdAt": "CreatedAt", "isDeleted": "IsDeleted",
                      "modelType": "ModelType"},
    "structs.Bid": {"id": "Id", "provider": "Provider", "modelAgentId": "ModelAgentId",
                    "pricePerSecond": "PricePerSecond", "nonce": "Nonce", "createdAt": "CreatedAt",
                    "deletedAt": "DeletedAt"},
    "structs.ScoredBid": {"id": "ID", "bid": "Bid", "score": "Score"},
    "structs.Session": {"id": "Id", "user": "User", "provider": "Provider", "modelAgentId": "ModelAgentId",
                        "bidID": "BidID", "stake": "Stake", "pricePerSecond": "PricePerSecond",
                        "closeoutReceipt": "CloseoutReceipt", "closeoutType": "CloseoutType",
                        "providerWithdrawnAmount": "ProviderWithdrawnAmount", "openedAt": "OpenedAt",
                        "endsAt": "EndsAt", "closedAt": "ClosedAt"},
}
# Bid's numbers are lib.BigInt, whose MarshalJSON writes a quoted decimal; the swagger says integer.
DIGIT_STRINGS = {"structs.Bid": ("pricePerSecond", "nonce", "createdAt", "deletedAt")}


def wire_definitions() -> dict[str, Any]:
    """The swagger's definitions as the wire has them; every property required, nothing extra
    on the untagged structs, so a renamed or missing field fails."""
    defs = copy.deepcopy(SWAGGER["definitions"])
    for name, d in defs.items():
        props = d.get("properties", {})
        for field in DIGIT_STRINGS.get(name, ()):
            props[field] = {"type": "string", "pattern": "^[0-9]+$"}
        if name in WIRE_NAMES:
            assert set(props) == set(WIRE_NAMES[name]), f"{name}: the swagger's fields changed"
            d["properties"] = {WIRE_NAMES[name][k]: v for k, v in props.items()}
            d["additionalProperties"] = False
        if name.startswith("structs.") and props:
            d["required"] = sorted(d["properties"])
    return defs


WIRE_DEFS = wire_definitions()


def check(template: str, method: str, r: httpx.Response) -> Any:
    """The reply validated against the swagger's schema for this route and status."""
    schema = SWAGGER["paths"][template][method.lower()]["responses"][str(r.status_code)]["schema"]
    doc = r.json()
    jsonschema.Draft4Validator({**schema, "definitions": WIRE_DEFS}).validate(doc)
    return doc


def request_ok(template: str, method: str, body: Any) -> None:
    """A request body we send validated against the swagger's parameter schema (as written)."""
    (param,) = [p for p in SWAGGER["paths"][template][method.lower()]["parameters"] if p["in"] == "body"]
    jsonschema.Draft4Validator({**param["schema"], "definitions": SWAGGER["definitions"]}).validate(body)


@pytest.fixture
def api(proxy_router):
    with httpx.Client(base_url=proxy_router.url, auth=AUTH, timeout=30) as client:
        yield client
    httpx.post(proxy_router.url + "/admin/faults", json={"fault_500": 0, "ttft_ms": 0, "jitter_ms": 0})


def first_model(api: httpx.Client) -> dict[str, Any]:
    return api.get("/blockchain/models").json()["models"][0]


def test_every_reply_matches_the_swagger_with_wire_names(api):
    health = check("/healthcheck", "GET", httpx.get(str(api.base_url) + "/healthcheck"))
    assert health["status"] == "healthy"
    models = check("/blockchain/models", "GET", api.get("/blockchain/models"))["models"]
    assert len(models) == 3 and all(HEX32.match(m["Id"]) and m["ModelType"] == "LLM" for m in models)
    page = check("/blockchain/models", "GET", api.get("/blockchain/models", params={"limit": 1, "offset": 1}))
    assert [m["Id"] for m in page["models"]] == [models[1]["Id"]]
    mid = models[0]["Id"]
    rated = check("/blockchain/models/{id}/bids/rated", "GET", api.get(f"/blockchain/models/{mid}/bids/rated"))["bids"]
    assert rated and all(b["Bid"]["ModelAgentId"] == mid and b["ID"] == b["Bid"]["Id"] for b in rated)
    assert [b["Score"] for b in rated] == sorted((b["Score"] for b in rated), reverse=True)
    bid = check("/blockchain/bids/{id}", "GET", api.get(f"/blockchain/bids/{rated[0]['ID']}"))["bid"]
    assert bid == rated[0]["Bid"]

    body = {"sessionDuration": 600}
    request_ok("/blockchain/bids/{id}/session", "POST", body)
    r = api.post(f"/blockchain/bids/{bid['Id']}/session", json=body)
    by_bid = check("/blockchain/bids/{id}/session", "POST", r)["sessionID"]
    failover = {"sessionDuration": 600, "directPayment": False, "failover": True, "rejectExisting": True,
                "omitProvider": rated[0]["Bid"]["Provider"]}
    request_ok("/blockchain/models/{id}/session", "POST", failover)
    r = api.post(f"/blockchain/models/{models[1]['Id']}/session", json=failover)
    by_model = check("/blockchain/models/{id}/session", "POST", r)["sessionID"]
    r = api.post(f"/blockchain/models/{models[1]['Id']}/session", json=failover)
    assert r.status_code == 409 and check("/blockchain/models/{id}/session", "POST", r)["existingSessionID"] == by_model

    s = check("/blockchain/sessions/{id}", "GET", api.get(f"/blockchain/sessions/{by_bid}"))["session"]
    assert (s["Id"], s["BidID"], s["ModelAgentId"], s["ClosedAt"]) == (by_bid, bid["Id"], mid, 0)
    assert s["EndsAt"] - s["OpenedAt"] == 600
    other = api.get(f"/blockchain/sessions/{by_model}").json()["session"]
    assert other["Provider"] != rated[0]["Bid"]["Provider"]  # omitProvider was honoured
    tx = check("/blockchain/approve", "POST", api.post("/blockchain/approve", params={
        "spender": s["Provider"], "amount": "1000"}))["tx"]
    assert HEX32.match(tx)
    closed = check("/blockchain/sessions/{id}/close", "POST", api.post(f"/blockchain/sessions/{by_bid}/close"))
    assert HEX32.match(closed["tx"])
    assert check("/blockchain/sessions/{id}", "GET", api.get(f"/blockchain/sessions/{by_bid}"))["session"]["ClosedAt"] > 0


def test_the_contract_catches_swagger_names_and_unquoted_big_numbers(api):
    good = api.get("/blockchain/models/" + first_model(api)["Id"] + "/bids/rated")
    check("/blockchain/models/{id}/bids/rated", "GET", good)
    doc = good.json()
    camel = {"bids": [{"id": b["ID"], "bid": b["Bid"], "score": b["Score"]} for b in doc["bids"]]}
    unquoted = copy.deepcopy(doc)
    unquoted["bids"][0]["Bid"]["PricePerSecond"] = int(unquoted["bids"][0]["Bid"]["PricePerSecond"])
    validator = jsonschema.Draft4Validator({"$ref": "#/definitions/structs.ScoredBidsRes", "definitions": WIRE_DEFS})
    for wrong in (camel, unquoted):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(wrong)


def test_minimal_gateway_works_unchanged_and_the_canary_comes_back(proxy_router, api):
    name = first_model(api)["Name"]
    gw = RouterGateway(proxy_router.url, *AUTH)
    try:
        session = gw.open_session(gw.model_id(name))
        for stream in (False, True):
            c = canary_for(new_op_id())
            echo = parse_echo(gw.chat(session, f"Plan a trip about {c} please.", stream=stream))
            assert echo.canaries == (c,) and echo.session == session.id and echo.model == name
        assert HEX32.match(gw.close_session(session))
        with pytest.raises(GatewayError, match="410.*session expired"):
            gw.chat(session, "after close")
    finally:
        gw.close()


def test_embeddings_follow_openai_shape_and_are_deterministic(api):
    mid = first_model(api)["Id"]
    body = {"input": ["one text", "two texts here"], "dimensions": 8}
    request_ok("/v1/embeddings", "POST", {"input": "x", "dimensions": 8})
    a = api.post("/v1/embeddings", json=body, headers={"model_id": mid}).json()
    b = api.post("/v1/embeddings", json=body, headers={"model_id": mid}).json()
    assert a == b and [len(d["embedding"]) for d in a["data"]] == [8, 8] and a["usage"]["prompt_tokens"] == 5


ROUTES = [("GET", "/blockchain/models"), ("GET", f"/blockchain/models/0x{'1' * 64}/bids/rated"),
          ("GET", f"/blockchain/bids/0x{'1' * 64}"), ("POST", f"/blockchain/bids/0x{'1' * 64}/session"),
          ("POST", f"/blockchain/models/0x{'1' * 64}/session"), ("POST", f"/blockchain/sessions/0x{'1' * 64}/close"),
          ("GET", f"/blockchain/sessions/0x{'1' * 64}"), ("POST", "/blockchain/approve"),
          ("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings"), ("POST", "/v1/audio/speech"),
          ("POST", "/v1/audio/transcriptions")]


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p[:40]}" for m, p in ROUTES])
def test_basic_auth_on_every_route_but_healthcheck(proxy_router, method, path):
    url = proxy_router.url + path
    r = httpx.request(method, url)
    assert r.status_code == 401 and r.json() == {"error": "no basic auth provided"}
    assert httpx.request(method, url, auth=("admin", "wrong")).json() == {"error": "invalid username or password"}
    garbage = httpx.request(method, url, headers={"Authorization": "Basic !!!"})
    assert garbage.status_code == 401 and garbage.json() == {"error": "invalid basic auth provided"}
    assert httpx.get(proxy_router.url + "/healthcheck").status_code == 200


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/nope-at-all"), ("GET", "/v1/chat/completions"),
                                              ("DELETE", "/blockchain/models"), ("GET", "/blockchain/sessions")])
def test_unknown_route_is_gins_plain_404_before_auth_and_logged(proxy_router, method, path):
    r = httpx.request(method, proxy_router.url + path)  # no credentials: routing comes first
    assert (r.status_code, r.text, r.headers["content-type"]) == (404, "404 page not found", "text/plain")
    assert f"no route {method} {path}" in proxy_router.log_text()


@pytest.mark.parametrize(("method", "path", "kw", "status", "words"), [
    ("GET", "/blockchain/bids/0x12", {}, 400, "32-byte hex"),
    ("GET", f"/blockchain/bids/0x{'2' * 64}", {}, 500, "not found"),
    ("GET", f"/blockchain/sessions/0x{'2' * 64}", {}, 500, "not found"),
    ("POST", "/blockchain/approve", {"params": {"spender": "bob", "amount": "1"}}, 400, "spender"),
    ("POST", "/v1/chat/completions", {"json": {"messages": [{"role": "user", "content": "x"}]}}, 400, "session_id"),
    ("POST", "/v1/chat/completions", {"json": {"messages": []}}, 400, "messages"),
    ("POST", "/v1/chat/completions", {"json": {"messages": [{"role": "user", "content": "x"}]},
                                      "headers": {"session_id": "0xdead"}}, 400, "session_id"),
    ("POST", "/v1/embeddings", {"json": {"input": 3}}, 400, "input"),
    ("POST", "/v1/audio/speech", {"json": {"input": "hi"}}, 501, "not served"),
])
def test_handler_errors_are_error_objects(api, method, path, kw, status, words):
    r = api.request(method, path, **kw)
    assert r.status_code == status and words in r.json()["error"] and set(r.json()) == {"error"}


def test_session_open_validates_its_body(api):
    mid = first_model(api)["Id"]
    for body in ({}, {"sessionDuration": 0}, {"sessionDuration": 60, "failover": "yes"},
                 {"sessionDuration": 60, "omitProvider": "x"}):
        r = api.post(f"/blockchain/models/{mid}/session", json=body)
        assert r.status_code == 400 and set(r.json()) == {"error"}, body
    assert api.post(f"/blockchain/models/{mid}/session", json={"sessionDuration": "60"}).status_code == 200  # lib.BigInt


def test_model_id_header_must_match_the_session(api):
    models = api.get("/blockchain/models").json()["models"]
    sid = api.post(f"/blockchain/models/{models[0]['Id']}/session", json={"sessionDuration": 60}).json()["sessionID"]
    body = {"messages": [{"role": "user", "content": "x"}]}
    r = api.post("/v1/chat/completions", json=body, headers={"session_id": sid, "model_id": models[1]["Id"]})
    assert r.status_code == 409 and "does not match" in r.json()["error"]


def test_faults_and_crosstalk_are_the_shared_machinery(proxy_router, api):
    api.post("/admin/faults", json={"fault_500": 1.0})
    mid = first_model(api)["Id"]
    r = api.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}, headers={"model_id": mid})
    assert r.status_code == 500 and r.json() == {"error": "injected fault: internal error"}
    api.post("/admin/faults", json={"fault_500": 0, "ttft_ms": 5, "jitter_ms": 40})
    sid = api.post(f"/blockchain/models/{mid}/session", json={"sessionDuration": 60}).json()["sessionID"]

    async def burst() -> int:
        canaries = [canary_for(new_op_id()) for _ in range(8)]
        async with httpx.AsyncClient(base_url=proxy_router.url, auth=AUTH, timeout=30) as client:
            replies = await asyncio.gather(*(client.post("/v1/chat/completions", headers={"session_id": sid}, json={
                "messages": [{"role": "user", "content": f"About {c}."}]}) for c in canaries))
        return sum(1 for c, rep in zip(canaries, replies) if set(find_canaries(rep.text)) - {c})

    crossed = 0
    for _ in range(3):  # a race: a few tries at most
        crossed = asyncio.run(burst())
        if crossed:
            break
    assert crossed > 0  # no request id reaches the router: replies on one session cross (seed 000)


def test_models_count_gives_seeded_hex_ids_and_names_give_stable_ones():
    eight = parse_models("8", seed=5)
    assert len(eight) == 8 and all(HEX32.match(m.id) and m.name == m.id for m in eight)
    assert parse_models("8", seed=5) == eight and parse_models("8", seed=6) != eight
    named = parse_models("a,b")
    assert [m.name for m in named] == ["a", "b"] and named == parse_models(" a , b ")
    assert all(HEX32.match(m.id) for m in named)


def test_openai_mode_serves_a_model_count(tmp_path):
    running = start_provider(tmp_path, "--models", "2", "--seed", "3", *FAST)
    try:
        ids = [m["id"] for m in httpx.get(running.url + "/v1/models").json()["data"]]
        assert ids == [m.id for m in parse_models("2", seed=3)]
        c = canary_for(new_op_id())
        r = httpx.post(running.url + "/v1/chat/completions", json={"model": ids[1], "messages": [
            {"role": "user", "content": f"x {c}"}]})
        assert parse_echo(r.json()["choices"][0]["message"]["content"]).model == ids[1]
    finally:
        stop_provider(running)


@pytest.mark.parametrize(("args", "words"), [
    (["--mode", "router"], "mode=router: expected one of openai, proxy-router"),
    (["--models", "a,,b"], "models=a,,b: expected"),
    (["--models", "0"], "models=0: expected"),
    (["--models", "a b"], "models=a b: expected"),
    (["--models", "x,x"], "models=x,x: expected each model name once"),
    (["--mode", "proxy-router", "--basic-auth", "admin"], "basic-auth=admin: expected USER:PASS"),
])
def test_bad_start_input_is_one_line_exit_2(args, words):
    p = subprocess.run([sys.executable, "-m", "sessionstorm.provider", "--port", "1", *args],
                       capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and words in p.stderr and "; pass --" in p.stderr
