"""Target profiles: each bad input is one ConfigError line naming the key and the fix."""
import subprocess
import sys

import portpicker
import pytest

from sessionstorm.errors import ConfigError
from sessionstorm.profiles import REFERENCE
from sessionstorm.stack.launch import attach
from sessionstorm.profile import fill, load_profile, parse_sets

GOOD = """
[target]
command = ["{python}", "-m", "svc", "--port", "{port}"]
env = { DB = "{postgres_dsn}", LEVEL = "{level}" }
vars = { level = "info" }
[keys]
literal = ["sk-1"]
"""


def write(tmp_path, text):
    p = tmp_path / "p.toml"
    p.write_text(text)
    return p


def error(tmp_path, text, **kw):
    with pytest.raises(ConfigError) as e:
        load_profile(write(tmp_path, text), check=False, env=kw.pop("env", {}), **kw)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_reference_and_good_profiles_load(tmp_path):
    ref = load_profile(REFERENCE, check=False, env={})
    assert ref.keys.source == "http" and set(ref.target.flavors) == {"gateway", "observe", "conversation"}
    assert len(ref.invariants) == 3 and ref.thresholds.p99_ms == 5000
    p = load_profile(write(tmp_path, GOOD), check=False, env={})
    assert p.target.timeout_s == 30.0 and p.paths.chat == "/v1/chat/completions"


@pytest.mark.parametrize("text,needle", [
    ("[target]\nflavors = ['gateway']\n[keys]\nliteral=['k']", "target.base_url=missing: expected exactly one of"),
    (GOOD.replace("[keys]", "base_url = 'http://x'\n[keys]"), "target.base_url=http://x: expected exactly one of"),
    (GOOD.replace("[keys]", "bse_url = 'x'\n[keys]"), "target.bse_url=x: expected one of the keys of [target]: name, base_url"),
    (GOOD + "[targte]\n", "targte=[targte]: expected one of the sections"),
    (GOOD.replace('vars = { level = "info" }', "timeout_s = 'fast'"), "target.timeout_s='fast': expected a number"),
    (GOOD.replace("literal = [\"sk-1\"]", "literal = 'sk-1'"), "keys.literal='sk-1': expected a list of strings"),
    (GOOD.replace('{level}', '{levle}'), "target.env=info... "),
    (GOOD.replace("command = [", "flavors = ['grpc']\ncommand = ["), "target.flavors=grpc: expected flavors among"),
    (GOOD.replace("literal = [\"sk-1\"]", "source = 'http'"), "keys.http_path=missing: expected a value, since keys.source = 'http'"),
    (GOOD.replace("literal = [\"sk-1\"]", "source = 'hook'\nhook = 'nosuchmod:f'"), "keys.hook=nosuchmod:f: expected an importable"),
    (GOOD.replace("literal = [\"sk-1\"]", "source = 'sql'\nsql = 'select 1'"), "database.dsn=missing"),
    (GOOD + "[paths]\nobserve = '/s/{sid}/observe'", "paths.observe=/s/{sid}/observe: expected a path starting with /"),
    (GOOD + "[thresholds]\nerror_rate = 1.5", "thresholds.error_rate=1.5: expected a number between 0 and 1"),
    (GOOD + "[invariants]\nx = ''", "invariants.x='': expected an SQL query"),
    (GOOD + "[auth]\nformat = 'Token abc'", "auth.format=Token abc: expected a format containing {key}"),
    ("[target\n", "target-profile="),
])
def test_each_bad_input_is_one_line_naming_the_key(tmp_path, text, needle):
    msg = error(tmp_path, text)
    if needle.endswith("... "):
        assert msg.startswith("target.env=") and "{levle}" in msg and "vars" in msg
    else:
        assert needle in msg, msg
    assert "fix" in msg or "set " in msg or "write" in msg or "pass" in msg


def test_env_and_cli_override_in_order(tmp_path):
    p = write(tmp_path, GOOD)
    env = {"SESSIONSTORM_TARGET_TIMEOUT_S": "7", "SESSIONSTORM_MODELS_NAMES": "a, b",
           "SESSIONSTORM_INVARIANTS_ONE_KEY": "select 1 where false", "SESSIONSTORM_TARGET_BUGS": "ignored"}
    prof = load_profile(p, check=False, env=env)
    assert prof.target.timeout_s == 7 and prof.models.names == ["a", "b"]
    assert prof.invariants == {"one_key": "select 1 where false"}
    prof = load_profile(p, overrides=parse_sets(["target.timeout_s=9.5", "thresholds.p99_ms=100"]), check=False, env=env)
    assert prof.target.timeout_s == 9.5 and prof.thresholds.p99_ms == 100
    with pytest.raises(ConfigError, match=r"SESSIONSTORM_TARGET_TIMEOUT_S"):
        load_profile(p, check=False, env={"SESSIONSTORM_TARGET_TIMEOUT_S": "soon"})
    with pytest.raises(ConfigError, match=r"^--set target\.nope=1: expected section\.key naming a profile key"):
        load_profile(p, overrides={"target.nope": "1"}, check=False, env={})
    with pytest.raises(ConfigError, match=r"^--set=x: expected section.key=value"):
        parse_sets(["x"])


def test_unreachable_base_url_is_named(tmp_path):
    url = f"http://127.0.0.1:{portpicker.pick_unused_port()}"
    p = write(tmp_path, f"[target]\nbase_url = '{url}'\n[keys]\nliteral = ['k']\n")
    with pytest.raises(ConfigError) as e:
        load_profile(p, env={})
    assert str(e.value).startswith(f"target.base_url={url}: expected a reachable service")
    assert attach(load_profile(p, env={}, check=False)).url == url


def test_fill_names_the_missing_placeholder():
    assert fill("{a}-{b}", {"a": 1, "b": "x"}, "s") == "1-x"
    with pytest.raises(ConfigError, match=r"^target.env=\{a\}: expected a value for \{a\}"):
        fill("{a}", {}, "target.env")


def test_cli_exit_code_2_and_one_line(tmp_path):
    p = write(tmp_path, GOOD.replace("[keys]", "colour = 'x'\n[keys]"))
    r = subprocess.run([sys.executable, "-m", "sessionstorm.cli", "check-profile", "--target-profile", str(p),
                        "--offline"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("sessionstorm: error: target.colour=x")
    ok = subprocess.run([sys.executable, "-m", "sessionstorm.cli", "check-profile", "--target-profile",
                         str(REFERENCE), "--offline", "--set", "target.llm=real"],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and '"llm": "real"' in ok.stdout
