"""The built wheel works outside the checkout: what the package needs at run time ships in it.

The wheel is installed into a fresh virtual environment in an empty folder; its
dependencies come from this project's environment (a path, not an install: the test must
not depend on a package index), but sessionstorm itself only from the wheel.
"""
from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp / "dist"), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next((tmp / "dist").glob("sessionstorm-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "sessionstorm/profiles/reference.toml" in names and "sessionstorm/report/templates/report.html.j2" in names
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    target = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    # the dependencies, as a plain path: its .pth files (our editable install) are not processed
    (target / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    work = tmp / "empty"
    work.mkdir()
    return py, work


def _run(py: Path, work: Path, *args: str, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSIONSTORM_", "PYTHONPATH"))}
    return subprocess.run([str(py), *args], cwd=work, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_package_comes_from_the_wheel_not_the_checkout(wheel_env):
    py, work = wheel_env
    p = _run(py, work, "-c", "import sessionstorm, sessionstorm.profiles as p; print(sessionstorm.__file__);"
                             "print(p.REFERENCE.is_file())")
    where, exists = p.stdout.split()
    assert str(ROOT) not in where and str(py.parent.parent) in where and exists == "True", p.stderr


def test_sessionstorm_run_works_from_an_empty_folder(wheel_env):
    py, work = wheel_env
    p = _run(py, work, "-m", "sessionstorm.cli", "run", "shared_key", "--reports-dir", "reports")
    assert p.returncode == 0, p.stderr[-2000:]
    results = json.loads((work / "reports" / "shared_key" / "latest" / "results.json").read_text())
    assert results["verdict"] == "CLEAN" and results["verified_ops"] > 0


def test_locust_runs_a_locustfile_that_only_imports_sessionstorm(wheel_env):
    py, work = wheel_env
    (work / "mine.py").write_text("from sessionstorm import SharedKeyUser  # noqa: F401\n")
    p = _run(py, work, "-m", "locust", "-f", "mine.py", "--headless", "-u", "4", "-r", "4", "-t", "4s",
             "--reports-dir", "lreports")
    assert p.returncode == 0, p.stderr[-2000:]
    results = json.loads((work / "lreports" / "mine" / "latest" / "results.json").read_text())
    assert results["verdict"] == "CLEAN" and results["verified_ops"] > 0
