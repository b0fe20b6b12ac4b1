"""Fixtures of the evaluation tests: stand-in datasets (see eval_fakes.py)."""

from __future__ import annotations

import pytest
from eval_fakes import CocoStandIn, shapes_dataset


@pytest.fixture
def shapes():
    return shapes_dataset()


@pytest.fixture(scope="module")
def coco4(shared_data):
    return CocoStandIn(shared_data / "coco_val2017_4img" / "annotations.json")
