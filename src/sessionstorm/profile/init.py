"""``sessionstorm init [--openapi URL|FILE]``: write a commented starter profile.

With ``--openapi`` (a FastAPI service serves ``/openapi.json``) it proposes ``[ops.*]``
tables from the paths and schemas it finds: a POST on a collection whose item path has a
GET is the create, a POST below an item is the write, the item's GET is the read-back
(its first array of objects gives ``canaries``), a POST whose path says chat, generate or
completions is the chat. What it could not decide is marked ``# TODO``. Next step:
``sessionstorm check-profile FILE --probe``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from sessionstorm.errors import ConfigError

STARTER = '''# A target profile for your service (see fixtures/example-external.toml for every key).
# Next: sessionstorm check-profile {file} --probe     then: sessionstorm run SCENARIO --target-profile {file}

[target]
name = "{name}"
{where}
ready_path = "{ready}"
# timeout_s = 30.0
# identity_header = "X-Served-By"        # a server identity header, recorded per op

[auth]
header = "Authorization"                 # "" sends no credentials
format = "Bearer {{key}}"

[keys]
source = "literal"
literal = ["sk-test-1"]                  # TODO: keys your service accepts (or source = "http" / "sql" / "hook")

[models]
names = ["gpt-4o-mini"]                  # TODO: models your gateway serves (chat only)

# What the service promises; each check judges only that (crosstalk always).
[contract]
request_id = "forwarded"                 # forwarded | own (the gateway mints its own) | none
provider_sessions = "one-per-key"        # one-per-key | pooled | per-request
# max_new_sessions_per_key = 4           # pooled: sessions a key may open within session_window_s
observe = "durable"                      # durable | best-effort
'''
OPS_HELP = '''
# Operations: request templates ({canary} {prompt} {session_id} {user} {key} {model} {op_id}
# {request_id}) and reply fields as JMESPath into the JSON reply (or "header:NAME").
'''
DEFAULT_OPS = '''
# [ops.create_session]
# method = "POST"
# path = "/sessions"
# body = { owner = "{user}" }
# session_id = "id"
#
# [ops.observe]
# path = "/sessions/{session_id}/items"
# body = { text = "{canary}" }
#
# [ops.read_session]
# method = "GET"
# path = "/sessions/{session_id}"
# canaries = "items[].text"
#
# [ops.chat]
# path = "/v1/chat/completions"
# body = { model = "{model}", messages = [{ role = "user", content = "{prompt}" }], stream = false }
# text = "choices[0].message.content"
'''
CHAT_WORDS = ("chat", "generate", "completion", "complete", "ask", "prompt")
PROMPT_FIELDS = ("input", "prompt", "content", "message", "text", "query", "question")
MODEL_FIELDS = ("model", "model_name", "model_id", "modelname")


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{k if re.fullmatch(r'[A-Za-z0-9_-]+', k) else json.dumps(k)} = {toml_value(x)}"
                                for k, x in v.items()) + " }"
    return json.dumps(str(v))


def load_openapi(source: str) -> tuple[dict[str, Any], str | None]:
    """The document, and the service's base URL when it came from one."""
    if source.startswith(("http://", "https://")):
        import httpx

        host = urlsplit(source).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError("openapi", source, "a loopback URL (127.0.0.1, localhost) or a FILE",
                              "download the document and pass --openapi FILE")
        try:
            r = httpx.get(source, timeout=10)
            doc = r.json()
        except (httpx.HTTPError, ValueError) as e:
            raise ConfigError("openapi", source, f"a URL answering an OpenAPI JSON document ({type(e).__name__})",
                              "start the service (FastAPI serves /openapi.json) or pass --openapi FILE") from None
        u = urlsplit(source)
        base: str | None = f"{u.scheme}://{u.netloc}"
    else:
        p = Path(source)
        if not p.is_file():
            raise ConfigError("openapi", source, "an existing file or an http:// URL", "pass --openapi FILE|URL")
        try:
            doc = json.loads(p.read_text())
        except ValueError:
            try:
                import yaml  # type: ignore[import-untyped]
                doc = yaml.safe_load(p.read_text())
            except Exception:  # noqa: BLE001
                raise ConfigError("openapi", source, "an OpenAPI document in JSON (or YAML)",
                                  "pass the service's /openapi.json") from None
        base = None
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
        raise ConfigError("openapi", source, "an OpenAPI document with paths", "pass the service's /openapi.json")
    return doc, base


class Schemas:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def resolve(self, s: Any, depth: int = 0) -> dict[str, Any]:
        if not isinstance(s, dict) or depth > 20:
            return {}
        if "$ref" in s:
            node: Any = self.doc
            for part in s["$ref"].lstrip("#/").split("/"):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            return self.resolve(node, depth + 1)
        for key in ("allOf", "anyOf", "oneOf"):
            if s.get(key):
                merged: dict[str, Any] = {"properties": {}, "required": []}
                for sub in s[key]:
                    r = self.resolve(sub, depth + 1)
                    if r.get("type") == "null":
                        continue
                    if key != "allOf" and not r.get("properties"):
                        return r
                    merged["properties"].update(r.get("properties", {}))
                    merged["required"] += r.get("required", [])
                    merged.setdefault("type", r.get("type"))
                return merged
        return s

    def props(self, s: Any) -> dict[str, Any]:
        return {k: self.resolve(v) for k, v in (self.resolve(s).get("properties") or {}).items()}

    def body(self, op: dict[str, Any]) -> dict[str, Any]:
        content = (op.get("requestBody") or {}).get("content") or {}
        return self.resolve((content.get("application/json") or {}).get("schema"))

    def reply(self, op: dict[str, Any]) -> dict[str, Any]:
        for status, resp in sorted((op.get("responses") or {}).items()):
            if str(status).startswith("2"):
                content = (self.resolve(resp).get("content") or {})
                return self.resolve((content.get("application/json") or {}).get("schema"))
        return {}

    def find(self, s: Any, want: Any, path: str = "", depth: int = 0) -> str | None:
        """The JMESPath of the first property (breadth first) for which want(name, schema) holds."""
        if depth > 3:
            return None
        props = self.props(s)
        for name, sub in props.items():
            if want(name, sub):
                return f"{path}{name}"
        for name, sub in props.items():
            if sub.get("type") == "object" or sub.get("properties"):
                found = self.find(sub, want, f"{path}{name}.", depth + 1)
                if found:
                    return found
        return None

    def template(self, s: Any, fill: dict[str, str], todo: list[str], path: str = "", depth: int = 0) -> Any:
        """A body template: known fields get placeholders, the first free string the canary."""
        s = self.resolve(s)
        if depth > 4:
            return {}
        if s.get("type") == "array":
            item = self.resolve(s.get("items"))
            return [self.template(item, fill, todo, path, depth + 1)] if item.get("properties") else []
        props = self.props(s)
        if not props:
            return fill.pop("__canary__", "{canary}") if s.get("type") == "string" else {}
        out: dict[str, Any] = {}
        required = set(s.get("required") or [])
        for name, sub in props.items():
            low = name.lower()
            if "default" in sub and name not in required:
                if low in ("stream",):
                    out[name] = False
                continue
            if low in MODEL_FIELDS and sub.get("type") == "string":
                out[name] = "{model}"
            elif low in ("user", "owner", "user_id", "owner_id", "username") and sub.get("type") == "string":
                out[name] = "{user}"
            elif low == "stream" and sub.get("type") == "boolean":
                out[name] = False
            elif low == "messages" and sub.get("type") == "array":
                out[name] = [{"role": "user", "content": "{prompt}"}]
            elif sub.get("type") == "string" and (fill.get("__canary__") or low in PROMPT_FIELDS):
                out[name] = fill.pop("__canary__", None) or fill.get("__text__", "{canary}")
            elif sub.get("type") == "object" or sub.get("properties") or sub.get("type") == "array":
                out[name] = self.template(sub, fill, todo, f"{path}{name}.", depth + 1)
            elif sub.get("enum"):
                out[name] = sub["enum"][0]
            elif sub.get("type") == "string":
                out[name] = "sessionstorm"
                todo.append(f"body field {path}{name}: a value your service accepts")
            elif sub.get("type") in ("integer", "number"):
                out[name] = 1
                todo.append(f"body field {path}{name}: a number your service accepts")
            elif sub.get("type") == "boolean":
                out[name] = False
        return out


def propose(doc: dict[str, Any]) -> tuple[list[tuple[str, dict[str, Any], list[str]]], list[str]]:
    """(op name, table, todos) per proposed operation, and what could not be decided."""
    sch = Schemas(doc)
    paths: dict[str, dict[str, Any]] = {p: v for p, v in doc["paths"].items() if isinstance(v, dict)}
    item_re = re.compile(r"^(.*)/\{[^}/]+\}$")
    ops: list[tuple[str, dict[str, Any], list[str]]] = []
    undecided: list[str] = []
    taken: set[str] = set()

    def add(name: str, table: dict[str, Any], todo: list[str]) -> None:
        if name not in taken:
            taken.add(name)
            ops.append((name, table, todo))

    for path, methods in paths.items():
        m = item_re.match(path)
        if not m or "get" not in methods or "post" not in paths.get(m[1], {}):
            continue
        collection, param = m[1], path[len(m[1]) + 2:-1]
        todo: list[str] = []
        create = paths[collection]["post"]
        id_names = ("id", param.lower(), "session_id", "sessionid")
        sid = sch.find(sch.reply(create), lambda n, s, names=id_names: n.lower() in names)
        if not sid:
            todo.append("session_id: where the reply names the new session")
        add("create_session", {"method": "POST", "path": collection,
                               "body": sch.template(sch.body(create), {}, todo) or {},
                               "session_id": sid or "id"}, todo)
        todo = []
        view = sch.reply(methods["get"])
        arrays = sch.find(view, lambda n, s: s.get("type") == "array" and bool(sch.props(s.get("items"))))
        arrays = arrays or sch.find(view, lambda n, s: s.get("type") == "array")
        canaries = None
        if arrays:
            arr_schema: Any = view
            for part in arrays.split("."):
                arr_schema = sch.props(arr_schema).get(part, {})
            item = sch.resolve(arr_schema.get("items"))
            text = next((n for n, s in sch.props(item).items() if s.get("type") == "string"), None)
            canaries = f"{arrays}[].{text}" if text else f"{arrays}[]"
        if not canaries:
            todo.append("canaries: where the written values come back (a list)")
        add("read_session", {"method": "GET", "path": path.replace("{" + param + "}", "{session_id}"),
                             "canaries": canaries or "items[]", "not_found": {"status": [404]}}, todo)
        for sub_path, sub_methods in paths.items():
            if sub_path.startswith(path + "/") and "post" in sub_methods:
                todo = []
                body = sch.template(sch.body(sub_methods["post"]), {"__canary__": "{canary}"}, todo)
                status = [int(s) for s in (sub_methods["post"].get("responses") or {}) if str(s).startswith("2")]
                add("observe", {"method": "POST", "path": sub_path.replace("{" + param + "}", "{session_id}"),
                                "body": body or {"text": "{canary}"}, **({"ok_status": status} if status else {})}, todo)
                break
        if "delete" in methods:
            add("delete_session", {"method": "DELETE", "path": path.replace("{" + param + "}", "{session_id}")}, [])
        break
    for path, methods in paths.items():
        post = methods.get("post")
        if post is None or "{" in path or not any(w in path.lower() for w in CHAT_WORDS):
            continue
        todo = []
        body = sch.template(sch.body(post), {"__text__": "{prompt}"}, todo)
        reply = sch.reply(post)
        text = sch.find(reply, lambda n, s: s.get("type") == "string" and n.lower() in ("text", "content", "output",
                                                                                          "answer", "response", "reply"))
        if not text:
            todo.append("text: where the answer's text is in the reply")
        table = {"method": "POST", "path": path, "body": body or {"model": "{model}", "input": "{prompt}"},
                 "text": text or "choices[0].message.content"}
        model = sch.find(reply, lambda n, s: n.lower() in ("model", "served_by", "model_name"))
        if model:
            table["model"] = model
        add("chat", table, todo)
        break
    if not ops:
        undecided.append("no session or chat operation recognised: declare [ops.*] by hand (examples below)")
    return ops, undecided


def render(name: str, where: str, ready: str, file: str, ops: list[tuple[str, dict[str, Any], list[str]]],
           undecided: list[str]) -> str:
    out = STARTER.format(name=name, where=where, ready=ready, file=file)
    if any(n == "chat" for n, _, _ in ops):
        pass
    else:
        out = out.replace('names = ["gpt-4o-mini"]                  # TODO: models your gateway serves (chat only)',
                          'names = ["gpt-4o-mini"]                  # only used by chat operations')
    out += OPS_HELP
    for line in undecided:
        out += f"# TODO: {line}\n"
    for op_name, table, todo in ops:
        out += f"\n[ops.{op_name}]\n"
        for t in todo:
            out += f"# TODO: {t}\n"
        for k, v in table.items():
            out += f"{k} = {toml_value(v)}\n"
    if not ops:
        out += DEFAULT_OPS
    return out


@click.command("init")
@click.option("--openapi", default=None, metavar="URL|FILE", help="Propose [ops.*] from an OpenAPI document.")
@click.option("-o", "--output", default="sessionstorm.toml", type=click.Path(dir_okay=False), show_default=True)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(openapi: str | None, output: str, force: bool) -> None:
    """Write a commented starter target profile (with --openapi: operations proposed from it)."""
    out = Path(output)
    if out.exists() and not force:
        raise ConfigError("output", output, "a file that does not exist yet", "pass --force or another -o FILE")
    ops: list[tuple[str, dict[str, Any], list[str]]] = []
    undecided: list[str] = []
    base: str | None = None
    doc: dict[str, Any] = {}
    name = "my-service"
    if openapi:
        doc, base = load_openapi(openapi)
        ops, undecided = propose(doc)
        name = re.sub(r"[^a-z0-9-]+", "-", str((doc.get("info") or {}).get("title") or name).lower()).strip("-") or name
    where = (f'base_url = "{base}"' if base else
             'base_url = "http://127.0.0.1:8080"         # TODO: where it runs, or launch it:\n'
             '# command = ["{python}", "-m", "myservice", "--port", "{port}"]   (then drop base_url)\n'
             '# env = { DATABASE_URL = "{postgres_dsn}", REDIS_URL = "{redis_url}", LLM_URL = "{provider_url}" }')
    ready = "/openapi.json" if base else "/healthz"
    text = render(name, where, ready, output, ops, undecided)
    if openapi and not ((doc.get("components") or {}).get("securitySchemes") or doc.get("security")):
        text = text.replace('header = "Authorization"                 # "" sends no credentials',
                            'header = ""                              # the schema declares no security scheme; '
                            'else "Authorization"')
    out.write_text(text)
    n_todo = sum(len(t) for _, _, t in ops) + len(undecided)
    click.echo(f"wrote {output}: {len(ops)} operation(s) proposed"
               + (f" ({', '.join(n for n, _, _ in ops)})" if ops else "")
               + (f", {n_todo} TODO(s) to decide" if n_todo else "")
               + f"; next: sessionstorm check-profile {output} --probe")
