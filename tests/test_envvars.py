"""Misspelt SESSIONSTORM_* variables are named; every name the source reads is known."""
from __future__ import annotations

import re
from pathlib import Path

from sessionstorm.envvars import PREFIX, PREFIXES, known, unknown

ROOT = Path(__file__).resolve().parents[1]


def test_a_misspelt_variable_gets_the_closest_known_name():
    assert unknown({"SESSIONSTORM_BAKCEND": "docker", "SESSIONSTORM_BACKEND": "docker", "HOME": "/root"}) == \
        [("SESSIONSTORM_BAKCEND", "SESSIONSTORM_BACKEND")]
    assert unknown({"SESSIONSTORM_THRESHOLDS_ERROR_RAT": "0.1"}) == \
        [("SESSIONSTORM_THRESHOLDS_ERROR_RAT", "SESSIONSTORM_THRESHOLDS_ERROR_RATE")]
    assert unknown({"SESSIONSTORM_ZZZ": "1"}) == [("SESSIONSTORM_ZZZ", None)]


def test_profile_keys_and_families_are_known():
    assert not unknown({"SESSIONSTORM_TARGET_TIMEOUT_S": "3", "SESSIONSTORM_INVARIANTS_NO_DUPES": "SELECT 1",
                        "SESSIONSTORM_COMPARE_LATENCY_RATIO": "2"})


def test_every_name_the_source_reads_is_known():
    names = known()
    found = set()
    for path in [*(ROOT / "src").rglob("*.py"), *(ROOT / "locustfiles").glob("*.py"), ROOT / "Makefile",
                 *(ROOT / "docker").glob("*.sh"), *(ROOT / "scripts").glob("*.sh")]:
        found |= set(re.findall(r"\bSESSIONSTORM_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="replace")))
    missing = sorted(n for n in found if n not in names and not n[len(PREFIX):].startswith(PREFIXES)
                     and not any(n == PREFIX + p.rstrip("_") for p in PREFIXES))
    assert not missing, f"add these to sessionstorm.envvars.OTHERS (or read them as profile keys): {missing}"
