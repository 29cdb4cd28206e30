"""docker/compose.yaml (not started here: compose would create a network, which this
project's machines forbid; the same images and commands run under the docker backend)."""
from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_publishes_on_loopback_only_and_wires_the_target() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "provider", "target"}
    for name, svc in services.items():
        assert svc["ports"] and all(p.startswith("127.0.0.1:") for p in svc["ports"]), name
        assert "healthcheck" in svc, name
    for name in ("provider", "target"):
        build = services[name]["build"]
        assert (ROOT / build["context"].replace("..", ".") / build["dockerfile"]).is_file()
    env = services["target"]["environment"]
    assert env["SESSIONSTORM_POSTGRES_DSN"].startswith("postgresql://postgres:sessionstorm@postgres:5432/")
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "sessionstorm"
    assert env["SESSIONSTORM_REDIS_URL"] == "redis://redis:6379/0"
    assert env["SESSIONSTORM_PROVIDER_URL"] == "http://provider:8001"
    assert "--port" in services["provider"]["command"] and "8001" in services["provider"]["command"]
    assert set(services["target"]["depends_on"]) == {"postgres", "redis", "provider"}
