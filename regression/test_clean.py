"""Every scenario against the clean target: zero anomalies allowed (the suite's guard
against false alarms, and your service's regression gate with --target-profile)."""
from __future__ import annotations

import pytest

from sessionstorm.scenarios import SCENARIOS

# steady is the soak and fault scenario (5 s by default); 2 s of it is 8 ticks of every flavor
SETTINGS = {"steady": {"seconds": 2}}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario_is_clean(scenario, target_for, run_checked, profile):
    target = target_for("")
    if not SCENARIOS[scenario].supports(target):
        pytest.skip(f"the target does not speak {SCENARIOS[scenario].flavor}")
    results = run_checked(scenario, target, **SETTINGS.get(scenario, {}))
    assert results["ops"] > 0, f"no operation was recorded\n{results['summary']}"
    assert results["outcomes"].get("ok", 0) > 0, f"no operation succeeded\n{results['summary']}"
    assert results["valid"] is True, f"{scenario} is not clean\n{results['summary']}"
