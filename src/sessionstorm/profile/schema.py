"""The shape of a target profile: one frozen dataclass per TOML table.

``[target] [paths] [auth] [models] [keys] [database] [thresholds] [contract] [provider]`` are typed
tables (their annotations are the schema the loader checks values against);
``[invariants]`` maps names to SQL; ``[ops.NAME]`` declares one operation each (`OpSpec`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

FLAVORS = ("gateway", "observe", "conversation")
KEY_SOURCES = ("literal", "sql", "http", "hook")
PATH_NAMES = ("session_id", "user_id", "model")

# Check families of a declared operation -> (the op kind recorded in the history, its flavor).
# The checkers judge a history kind, so an operation of your own joins a family by `kind`.
FAMILIES: dict[str, tuple[str, str]] = {
    "create": ("create_session", "observe"), "write": ("observe", "observe"), "read_back": ("read_session", "observe"),
    "delete": ("delete_session", "observe"), "chat": ("chat", "gateway"), "message": ("message", "conversation"),
}
# An [ops.NAME] table with one of these names needs no `kind`.
STANDARD_OPS = {"create_session": "create", "observe": "write", "read_session": "read_back",
                "delete_session": "delete", "chat": "chat", "message": "message"}
REQUEST_ID = ("forwarded", "own", "none")
PROVIDER_SESSIONS = ("one-per-key", "pooled", "per-request")
OBSERVE = ("durable", "best-effort")


@dataclass(frozen=True)
class TargetSection:
    name: str = "target"
    base_url: str | None = None          # a running service ...
    command: list[str] | None = None     # ... or how the stack launches it
    cwd: str | None = None               # the folder it starts in (templates allowed, e.g. {profile_dir})
    env: dict[str, str] = field(default_factory=dict)
    vars: dict[str, str] = field(default_factory=dict)   # defaults of placeholders of our own
    setup: list[list[str]] = field(default_factory=list)  # run before the service starts (migrations)
    ready_path: str = "/healthz"
    flavors: list[str] = field(default_factory=lambda: ["gateway"])  # default: those of [ops], else gateway
    llm: str = "stub"                    # "real": replies carry the canary only if the model obeys
    timeout_s: float = 30.0
    request_id_header: str = "X-Request-ID"  # "" sends none
    identity_header: str = ""            # a server identity header, recorded per op (server_id)
    allow_remote: bool = False           # a non-loopback target only when true (or --allow-remote)
    addresses: str = "spread"            # "spread": connections round-robin over every address; "first"
    resolve: dict[str, list[str]] = field(default_factory=dict)  # pin names: {"localhost" = ["::1", "127.0.0.1"]}
    reprobe_s: float = 60.0              # the preflight again every so often during the run; 0: only before load


@dataclass(frozen=True)
class PathsSection:
    chat: str = "/v1/chat/completions"
    create_session: str = "/sessions"
    observe: str = "/sessions/{session_id}/observe"
    read_session: str = "/sessions/{session_id}"
    delete_session: str = "/sessions/{session_id}"
    message: str = "/v1/conversations/{user_id}/messages"


@dataclass(frozen=True)
class AuthSection:
    header: str = "Authorization"        # "" sends no credentials
    format: str = "Bearer {key}"


@dataclass(frozen=True)
class ModelsSection:
    names: list[str] = field(default_factory=lambda: ["qwen3-235b", "llama-70b", "mistral-7b"])


@dataclass(frozen=True)
class KeysSection:
    source: str = "literal"
    literal: list[str] = field(default_factory=list)
    sql: str | None = None               # returns one row whose first column is the key; {user}
    http_method: str = "POST"
    http_path: str | None = None
    http_headers: dict[str, str] = field(default_factory=dict)
    http_body: dict[str, str] = field(default_factory=dict)
    http_field: str = "api_key"
    hook: str | None = None              # "module:function", called as f(user, target) -> key


@dataclass(frozen=True)
class DatabaseSection:
    dsn: str | None = None               # e.g. "{postgres_dsn}"; none: invariants are skipped


@dataclass(frozen=True)
class ThresholdsSection:
    error_rate: float | None = None       # share of operations not verified ok (default 0.01)
    info_rate: float | None = None        # share with an unknown outcome (default 0.01)
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    ttft_p95_ms: float | None = None
    session_reuse_ratio: float | None = None
    recovery_s: float | None = None       # grace after a fault ends before a failure counts (default 10)


@dataclass(frozen=True)
class ContractSection:
    """What the service promises; each check judges only that (crosstalk always)."""

    request_id: str = "forwarded"         # forwarded | own | none
    provider_sessions: str = "one-per-key"  # one-per-key | pooled | per-request
    max_new_sessions_per_key: int | None = None  # within session_window_s (default: 1 one-per-key, unjudged pooled)
    session_window_s: float = 10.0
    min_reuse_ratio: float | None = None  # share of ops on a session the key already had
    observe: str = "durable"              # durable | best-effort

    def max_new(self) -> int | None:
        """New provider sessions a key may open within the window; None: not judged."""
        if self.provider_sessions == "per-request":
            return None
        if self.max_new_sessions_per_key is not None:
            return self.max_new_sessions_per_key
        return 1 if self.provider_sessions == "one-per-key" else None


@dataclass(frozen=True)
class ProviderSection:
    """The stub provider the stack starts (`sessionstorm.provider`); unset keys keep its defaults.

    Each key is the provider's command-line flag (``ttft_ms`` is ``--ttft-ms``);
    `sessionstorm.profile.provider` checks them and turns them into flags.
    """

    mode: str | None = None               # openai | proxy-router (default openai)
    models: list[str] | int | None = None  # names, or a count of generated 0x-hex ids (seeded)
    seed: int | None = None               # jitter, faults and generated ids
    basic_auth: str | None = None         # USER:PASS (proxy-router mode)
    ttft_ms: float | None = None
    token_ms: float | None = None
    jitter_ms: float | None = None
    min_tokens: int | None = None
    max_tokens: int | None = None
    fault_500: float | None = None
    fault_drop: float | None = None
    fault_cut: float | None = None
    delay_ms: float | None = None
    session_open_ms: float | None = None
    session_ttl_s: float | None = None


@dataclass(frozen=True)
class StreamSpec:
    format: str = "sse"                   # sse | ndjson
    text: str = "choices[0].delta.content"  # JMESPath into each event: its text
    done: str = "[DONE]"                  # the event that ends the stream ("" = none)
    body: Any = None                      # the streaming request's body (default: the op's, with stream = true)


@dataclass(frozen=True)
class NotFound:
    status: list[int] = field(default_factory=lambda: [404])
    contains: str = ""                    # and the body contains this ("" = any body)


@dataclass(frozen=True)
class OpSpec:
    """One declared operation: how to build its request and what to read from its reply.

    Reply fields are JMESPath expressions into the JSON reply, or ``header:NAME``.
    """

    name: str
    kind: str                             # check family: create | write | read_back | delete | chat | message
    method: str = "POST"
    path: str = "/"
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None                      # a table, array or string; strings are templates
    ok_status: list[int] = field(default_factory=list)  # empty: any 2xx
    session_id: str | None = None         # the session the reply names (create: required)
    canaries: str | None = None           # read_back: where the written values come back (a list)
    text: str | None = None               # chat/message: where canaries are searched (default: whole body)
    model: str | None = None              # chat: the model that answered
    request_id: str | None = None         # chat: the request id the reply answers
    turn: str | None = None               # message: the turn number the service reports
    context: str | None = None            # message: the context it holds (a list)
    not_found: NotFound | None = None     # what "this session does not exist" looks like
    stream: StreamSpec | None = None      # chat: how a streamed reply looks
    build: str | None = None              # "module:function" (spec, values, op) -> (method, path, headers, body)
    parse: str | None = None              # "module:function" (spec, op, status, headers, body) -> None

    @property
    def history_kind(self) -> str:
        return FAMILIES[self.kind][0]

    @property
    def flavor(self) -> str:
        return FAMILIES[self.kind][1]


@dataclass(frozen=True)
class Profile:
    target: TargetSection
    paths: PathsSection
    auth: AuthSection
    models: ModelsSection
    keys: KeysSection
    database: DatabaseSection
    thresholds: ThresholdsSection
    invariants: dict[str, str]
    contract: ContractSection = field(default_factory=ContractSection)
    provider: ProviderSection = field(default_factory=ProviderSection)
    ops: dict[str, OpSpec] = field(default_factory=dict)
    faults: tuple[str, ...] = ()         # [[faults]]: fault specs (sessionstorm.nemesis), e.g. "kill:target@5+3"
    source: str = "<defaults>"

    def op_for(self, kind: str) -> OpSpec | None:
        """The declared operation recorded as history kind ``kind`` (None: the [paths] short form)."""
        for spec in self.ops.values():
            if spec.history_kind == kind:
                return spec
        return None

    def path(self, name: str, **values: str) -> str:
        """The [paths] path of an operation with its placeholders filled (values URL-quoted)."""
        template = getattr(self.paths, name)
        if "{" not in template:  # most paths have no placeholder: skip the regex
            return template
        from sessionstorm.profile.templates import PLACEHOLDER
        return PLACEHOLDER.sub(lambda m: quote(str(values[m[1]]), safe=""), template)

    def auth_headers(self, key: str | None) -> dict[str, str]:
        if key is None or not self.auth.header:
            return {}
        return {self.auth.header: self.auth.format.replace("{key}", key)}

    def redacted(self) -> dict[str, Any]:
        """The profile for run.json: literal keys and secrets never reach disk."""
        from dataclasses import asdict

        d = {name: asdict(getattr(self, name)) for name in
             ("target", "paths", "auth", "models", "keys", "database", "thresholds", "contract",
                          "provider")}
        d["invariants"] = dict(self.invariants)
        d["ops"] = {name: asdict(spec) for name, spec in self.ops.items()}
        d["keys"]["literal"] = [f"<{len(self.keys.literal)} keys>"] if self.keys.literal else []
        if self.provider.basic_auth:
            d["provider"]["basic_auth"] = "<redacted>"
        d["faults"] = list(self.faults)
        d["source"] = self.source
        return d


SECTIONS: dict[str, type] = {
    "target": TargetSection, "paths": PathsSection, "auth": AuthSection, "models": ModelsSection,
    "keys": KeysSection, "database": DatabaseSection, "thresholds": ThresholdsSection, "contract": ContractSection,
    "provider": ProviderSection,
}
FREE_SECTIONS = ("invariants", "ops")
