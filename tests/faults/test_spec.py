"""Fault specs as the user writes them: --fault, [[faults]] in a profile; bad ones are one line."""
from __future__ import annotations

import pytest

from sessionstorm.errors import ConfigError
from sessionstorm.nemesis import check_faults, from_table, parse_fault, parse_faults
from sessionstorm.profile import load_profile


@pytest.mark.parametrize(("spec", "action", "component", "at", "duration", "options"), [
    ("kill:target@5+3", "kill", "target", 5.0, 3.0, {}),
    ("restart:postgres@10", "restart", "postgres", 10.0, None, {}),
    ("pause:redis@8+4", "pause", "redis", 8.0, 4.0, {}),
    ("error:provider@5+5", "error", "provider", 5.0, 5.0, {}),
    ("error:provider@5+5,rate=0.5", "error", "provider", 5.0, 5.0, {"rate": 0.5}),
    ("latency:provider@5+5", "latency", "provider", 5.0, 5.0, {}),
    ("latency:provider@5+5,latency=800ms", "latency", "provider", 5.0, 5.0, {"latency": 800.0}),
    ("latency:provider@5+5,latency=1.5s", "latency", "provider", 5.0, 5.0, {"latency": 1500.0}),
    ("drop:target@5+2", "drop", "target", 5.0, 2.0, {}),
    ("kill:redis@500ms+1.5s", "kill", "redis", 0.5, 1.5, {}),
])
def test_the_issue_examples_parse(spec, action, component, at, duration, options):
    f = parse_fault(spec)
    assert (f.action, f.component, f.at_s, f.duration_s, dict(f.options), f.spec) == (
        action, component, at, duration, options, spec)


@pytest.mark.parametrize(("spec", "says"), [
    ("kill:target", "ACTION:COMPONENT@START"),
    ("explode:target@5", "an action among"),
    ("kill:kafka@5", "kill on target or postgres or redis or provider"),
    ("error:target@5+1", "error on provider"),
    ("drop:postgres@5+1", "drop on target"),
    ("pause:redis@8", "a duration for pause"),
    ("drop:target@5", "a duration for drop"),
    ("kill:target@soon", "a start in seconds"),
    ("kill:target@5+long", "a duration in seconds"),
    ("latency:provider@5+5,size=3", "options of latency: latency"),
    ("error:provider@5+5,rate=2", "rate from 0 to 1"),
])
def test_a_bad_spec_is_one_line_that_tells_the_fix(spec, says):
    with pytest.raises(ConfigError) as e:
        parse_fault(spec)
    msg = str(e.value)
    assert says in msg and "\n" not in msg and msg.startswith(f"fault={spec}")


def test_a_profile_table_is_the_same_fault():
    assert from_table({"fault": "kill:target@5+3"}) == parse_fault("kill:target@5+3")
    assert from_table({"action": "pause", "component": "redis", "at": 8, "duration": 4}).spec == "pause:redis@8+4"
    assert from_table({"action": "latency", "component": "provider", "at": 1, "duration": 2,
                       "latency": "800ms"}).options == {"latency": 800.0}
    with pytest.raises(ConfigError, match="add component"):
        from_table({"action": "kill", "at": 1})


def test_faults_in_a_profile(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('[target]\nname = "svc"\ncommand = ["{python}", "-m", "svc"]\n[keys]\nliteral = ["k"]\n'
                 '[thresholds]\nrecovery_s = 5\n'
                 '[[faults]]\nfault = "kill:target@5+3"\n'
                 '[[faults]]\naction = "restart"\ncomponent = "postgres"\nat = 10\n')
    prof = load_profile(p)
    assert prof.faults == ("kill:target@5+3", "restart:postgres@10")
    assert prof.thresholds.recovery_s == 5
    assert prof.redacted()["faults"] == ["kill:target@5+3", "restart:postgres@10"]
    p.write_text('[target]\nname = "svc"\ncommand = ["x"]\n[keys]\nliteral = ["k"]\n[[faults]]\nfault = "kill:db@1"\n')
    with pytest.raises(ConfigError, match="fault=kill:db@1"):
        load_profile(p)


def test_faults_are_sorted_by_time():
    assert [f.spec for f in parse_faults(["restart:redis@9", "kill:target@1+1"])] == ["kill:target@1+1", "restart:redis@9"]


@pytest.mark.parametrize(("spec", "backend", "launched", "says"), [
    ("kill:target@1+1", "embedded", False, "a target the stack launches"),
    ("pause:target@1+1", "embedded", False, "a target the stack launches"),
    ("restart:postgres@1", "external", True, "an external postgres cannot be faulted"),
    ("kill:redis@1+1", "external", True, "an external redis cannot be faulted"),
    ("error:provider@1+1", "external", True, "an external provider cannot be faulted"),
    ("restart:postgres@1", "embedded", False, "does not use the stack"),
])
def test_what_cannot_be_faulted_is_refused_before_start(spec, backend, launched, says):
    with pytest.raises(ConfigError, match=says):
        check_faults([parse_fault(spec)], backend=backend, target_launched=launched)


def test_drop_works_for_any_target_and_overlaps_are_refused():
    check_faults([parse_fault("drop:target@1+1")], backend="external", target_launched=False)
    with pytest.raises(ConfigError, match="no overlap with kill:target@1\\+3"):
        check_faults(parse_faults(["kill:target@1+3", "pause:target@2+1"]), backend="embedded", target_launched=True)
