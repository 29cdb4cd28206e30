"""How often each seeded bug shows, at what concurrency: every bug's scenario run REPEATS
times at three concurrency levels against the reference target on the embedded stack;
a run counts when the checker finds the bug's anomaly. The clean target runs the same
scenarios (it must show nothing)."""
from __future__ import annotations

import asyncio
import os
import sys
import tempfile

from sessionstorm.checker import check_run
from sessionstorm.driver import run_scenario
from sessionstorm.profiles import REFERENCE
from sessionstorm.rundir import RunDir
from sessionstorm.stack import Stack
from sessionstorm.stack.launch import launch
from sessionstorm.profile import load_profile

REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
ONLY = os.environ.get("BENCH_ONLY")
CASES = [  # bug, scenario, the knob that sets concurrency, codes that count
    ("no-request-id", "shared_key", "users", {"CROSSTALK"}),
    ("model-switch-race", "model_switch", "users", {"WRONG_MODEL", "SESSION_EXPIRED_IN_FLIGHT"}),
    ("racy-get-or-create", "first_messages", "concurrency", {"DUPLICATE_ACTIVE_SESSION"}),
    ("bad-fallback", "first_messages", "concurrency", {"SESSION_CHURN", "CONTEXT_LOSS"}),
    ("racy-get-or-create,no-unique-index", "shared_key", "users", {"INVARIANT_VIOLATED"}),
    ("unlocked-lazy-init", "parallel_observe", "observes", {"SPURIOUS_NOT_FOUND"}),
    ("lost-update-observe", "parallel_observe", "observes", {"LOST_WRITE"}),
    ("model-id-not-forwarded", "model_switch", "users", {"WRONG_MODEL"}),
]
LEVELS = {"users": (2, 5, 10), "concurrency": (2, 3, 5), "observes": (2, 5, 10)}


def main() -> None:
    profile = load_profile(REFERENCE)
    with Stack() as stack, tempfile.TemporaryDirectory() as tmp:
        targets = {}
        print(f"runs (of {REPEATS}) in which the anomaly was found; clean target in brackets")
        print(f"{'bug':<36} {'scenario':<18} {'knob':<12} " + "  ".join(f"{'level':>5}" for _ in range(3)))
        for bugs, scenario, knob, codes in CASES:
            if ONLY and bugs != ONLY:
                continue
            cells = []
            for level in LEVELS[knob]:
                hits, clean_hits = 0, 0
                for flags in (bugs, ""):
                    if flags not in targets:
                        targets[flags] = launch(profile, stack, vars={"bugs": flags}, name=flags or "clean")
                    for _ in range(REPEATS if flags else 1):
                        run = RunDir.create(scenario, root=tmp)
                        asyncio.run(run_scenario(scenario, targets[flags], run, **{knob: level}))
                        found = {a["code"] for a in check_run(run)["anomalies"]}
                        if flags:
                            hits += bool(found & codes)
                        else:
                            clean_hits += bool(found)
                cells.append(f"{knob[0]}={level}:{hits}/{REPEATS}[{clean_hits}]")
            print(f"{bugs:<36} {scenario:<18} {knob:<12} " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    sys.exit(main())
