"""A profile's [provider] table: the stub provider the stack starts (mode, models, latency,
faults, seed), settable from the file, env and --set; bad input is one line, exit 2."""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from sessionstorm.cli import main
from sessionstorm.errors import ConfigError
from sessionstorm.profile import load_profile
from sessionstorm.profile.provider import (
    provider_args,
    provider_models,
    provider_values,
)
from sessionstorm.profiles import REFERENCE
from sessionstorm.provider.catalog import HEX32, parse_models

GOOD = """
[target]
base_url = "http://127.0.0.1:9"
flavors = ["gateway"]
[keys]
source = "literal"
literal = ["k1"]
[provider]
"""


def _profile(tmp_path: Path, table: str, base: str = GOOD) -> Path:
    path = tmp_path / "p.toml"
    assert base.count("[provider]\n") == 1
    path.write_text(base.replace("[provider]\n", "[provider]\n" + table + "\n"))
    return path


def test_file_env_and_set_reach_the_provider_flags(tmp_path):
    path = _profile(tmp_path, 'mode = "proxy-router"\nmodels = 3\nttft_ms = 5\nseed = 7\nfault_500 = 0.25')
    p = load_profile(path, env={}, check=False)
    assert provider_args(p) == ["--mode", "proxy-router", "--models", "3", "--seed", "7", "--ttft-ms", "5",
                                "--fault-500", "0.25"]
    ids = provider_models(p)
    assert ids == [m.name for m in parse_models("3", 7)] and all(HEX32.match(i) for i in ids)
    assert p.models.names == ids  # unset [models] names: what the stub serves
    values = provider_values(p)
    assert json.loads(values["provider_models"]) == ids and values["provider_model_ids"] == ",".join(ids)
    env = {"SESSIONSTORM_PROVIDER_MODELS": "a,b", "SESSIONSTORM_PROVIDER_TOKEN_MS": "2"}
    p = load_profile(path, {"provider.mode": "openai", "provider.jitter_ms": "0"}, env=env, check=False)
    assert provider_args(p)[:4] == ["--mode", "openai", "--models", "a,b"]
    assert {"--token-ms", "2", "--jitter-ms", "0"} <= set(provider_args(p))
    assert p.models.names == ["a", "b"]
    assert provider_args(load_profile(_profile(tmp_path, ""), env={}, check=False)) == []  # defaults: no flags


def test_explicit_model_names_are_kept(tmp_path):
    p = load_profile(_profile(tmp_path, "models = 2\n[models]\nnames = [\"mine\"]"), env={}, check=False)
    assert p.models.names == ["mine"] and len(provider_models(p)) == 2


def test_templates_may_use_the_provider_models(tmp_path):
    text = Path(REFERENCE).read_text().replace(
        'SESSIONSTORM_TARGET_BUGS = "{bugs}",', 'SESSIONSTORM_TARGET_BUGS = "{bugs}", MODELS = "{provider_model_ids}",')
    path = tmp_path / "ref.toml"
    path.write_text(text)
    assert "{provider_model_ids}" in load_profile(path, env={}, check=False).target.env["MODELS"]


BAD = [  # ([provider] table, words of the one line)
    ('mode = "grpc"', "provider.mode=grpc"),
    ("models = \"three\"", "provider.models='three'"),
    ("models = 2.5", "provider.models=2.5"),
    ("models = 0", "provider.models=0"),
    ("models = []", "provider.models=[]"),
    ('models = ["a", "a"]', "provider.models="),
    ('models = ["has space"]', "provider.models="),
    ("ttft_ms = -5", "provider.ttft_ms=-5"),
    ('token_ms = "fast"', "provider.token_ms='fast'"),
    ("fault_500 = 2", "provider.fault_500=2"),
    ("min_tokens = 50\nmax_tokens = 10", "provider.min_tokens=50"),
    ("seed = 1.5", "provider.seed=1.5"),
    ('basic_auth = "nopass"', "provider.basic_auth=nopass"),
    ("nosuch = 1", "provider.nosuch"),
]


@pytest.mark.parametrize(("table", "words"), BAD, ids=[w for _, w in BAD])
def test_bad_provider_table_is_one_line_exit_2(table, words, tmp_path, capsys, monkeypatch):
    reports = tmp_path / "reports"
    monkeypatch.setenv("SESSIONSTORM_REPORTS", str(reports))
    path = _profile(tmp_path, table, Path(REFERENCE).read_text())  # a launched target: nothing may start
    code = main(["run", "shared_key", "--target-profile", str(path)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("sessionstorm: error:")]
    assert code == 2 and len(errors) == 1 and words in errors[0], err
    assert "expected" in errors[0] and "Traceback" not in err
    assert "nosuch" in table or "SESSIONSTORM_PROVIDER_" in errors[0]
    assert not reports.exists() or not any(reports.rglob("run.json"))


@pytest.mark.parametrize(("key", "value", "words"), [
    ("mode", "grpc", "provider.mode=grpc"), ("ttft_ms", "-1", "provider.ttft_ms=-1"),
    ("jitter_ms", "soon", "provider.jitter_ms='soon'"), ("models", "0", "provider.models=0")])
def test_bad_set_and_env_are_one_line(key, value, words, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SESSIONSTORM_REPORTS", str(tmp_path / "reports"))
    assert main(["run", "shared_key", "--set", f"provider.{key}={value}"]) == 2
    assert words in capsys.readouterr().err
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("'", "'?")):
        load_profile(REFERENCE, env={f"SESSIONSTORM_PROVIDER_{key.upper()}": value}, check=False)


def test_a_run_against_generated_model_ids(tmp_path, capsys):
    """The reference gateway forwards the model name: with [provider] models = 3 and
    [models] names unset, it asks for the generated ids, and the stub serves them."""
    path = _profile(tmp_path, "models = 3\nttft_ms = 1\njitter_ms = 1", Path(REFERENCE).read_text())
    reports = tmp_path / "reports"
    try:
        code = main(["run", "shared_key", "--target-profile", str(path), "--users", "4", "--rounds", "3",
                     "--reports-dir", str(reports)])
    except SystemExit as e:  # a finished run exits with its verdict's code
        code = e.code
    out = capsys.readouterr()
    assert code == 0 and "CLEAN" in out.out, out.out[-3000:] + out.err[-3000:]
    run = next(reports.rglob("run.json")).parent
    assert json.loads((run / "results.json").read_text())["verdict"] == "CLEAN"
    ids = set(parse_models("3"))
    served = {json.loads(line).get("model_served") for f in (run / "history").glob("*.jsonl")
              for line in f.read_text().splitlines() if line.strip()}
    served.discard(None)
    assert served and served <= {m.name for m in ids}, served
    assert json.loads((run / "run.json").read_text())["target"]["profile"]["provider"]["models"] == 3


def test_set_mode_reaches_the_provider(tmp_path):
    """--set provider.mode=proxy-router: the stack's provider answers the router's /healthcheck."""
    from sessionstorm.stack import Stack

    p = load_profile(REFERENCE, {"provider.mode": "proxy-router", "provider.models": "2"}, env={}, check=False)
    with Stack(provider_args=provider_args(p)) as stack:
        r = httpx.get(stack.provider.url + "/healthcheck", timeout=5)
        assert r.status_code == 200, r.text
        models = httpx.get(stack.provider.url + "/blockchain/models", auth=("admin", "sessionstorm"), timeout=5)
        assert models.status_code == 200 and {m["Id"] for m in models.json()["models"]} == set(provider_models(p))
