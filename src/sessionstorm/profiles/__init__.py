"""Profiles that ship with the package (package data, so an installed wheel has them).

``REFERENCE`` describes the reference target (sessionstorm.target): what `sessionstorm
run`, the Locust plugin and the regression suite use when given no profile of yours.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

REFERENCE = Path(str(files(__package__) / "reference.toml"))
