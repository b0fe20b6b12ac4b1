"""Fixtures of the model tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def parity_report():
    """``benchmarks/parity_report.py`` as a module: the comparison code the parity tests assert on."""
    spec = importlib.util.spec_from_file_location("parity_report", ROOT / "benchmarks" / "parity_report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("parity_report", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module
