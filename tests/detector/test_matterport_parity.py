"""Parity with matterport's own code: matterport ``.h5`` weights in, matterport's detections out.

The weights are ``reference.py --backbone resnet50 --seed 0``'s, regenerated without TensorFlow
(``matterport_seeded.write_seeded_h5``, checked tensor for tensor in test_matterport_seeded.py);
the expected outputs are matterport's own on two balloon val images (square 1024, 81 classes),
committed compactly in tests/fixtures/matterport/r50_c81_s0 (README there). The comparison is
``maskrcnn.evaluation.parity``; ``benchmarks/matterport_parity.py`` prints the same report.

Boundary cases are excused when found on one side only (``edge_flips_ok``; README of the fixtures):
detections from ROIs on the far image edge, where TensorFlow's crop_and_resize zeroes a whole
column when the last sample point is one float32 ulp past the map, so a 1e-7 difference in a
proposal decides it (seen on 3825919971: ROI 73, class 79 at 0.968 in matterport, 0.544 in ours,
with crops and features equal), and detections wholly in the padding (near-tied scores).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import matterport_seeded as ms

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "matterport"
# about a minute each on 2 CPU cores (1024x1024, run_graph + detect): the second one only with -m slow.
# 3825919971 is the one with an edge flip (see above).
#: boundary detections (edge flips, padding ties) per image and side that matterport itself shows between
#: two CPUs (test_matterport_against_itself_on_another_cpu).
MATTERPORT_SELF_BOUNDARY = 2
IMAGES = ("3825919971_93fb1ec581_b", pytest.param("14898532020_ba6199dd22_k", marks=pytest.mark.slow))


def _benchmark():
    spec = importlib.util.spec_from_file_location("matterport_parity", ROOT / "benchmarks" / "matterport_parity.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("matterport_parity", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import maskrcnn.config

    if not hasattr(maskrcnn.config, "MatterportConfig"):
        pytest.skip("maskrcnn.config.MatterportConfig does not exist yet")
    import torch

    torch.set_num_threads(2)
    h5 = ms.write_seeded_h5(tmp_path_factory.mktemp("matterport") / "r50_c81_s0.h5", backbone="resnet50",
                            num_classes=81, seed=0, calibrated_npz=FIXTURES / "r50_c81_s0_calibration.npz")
    return _benchmark().build_model(h5)


@pytest.mark.parametrize("stem", IMAGES)
def test_same_detections_as_matterport(model, shared_data, stem):
    from maskrcnn.evaluation.parity import compare_image, format_report

    with np.load(FIXTURES / "r50_c81_s0" / f"{stem}.npz") as data:
        ref = {k: data[k] for k in data.files}
    if not (shared_data / str(ref["source"])).is_file():
        pytest.skip(f"{shared_data / str(ref['source'])} not found")
    bench = _benchmark()
    ours = bench.ours(model, bench.reference_image(ref, shared_data))
    strict = compare_image(ours, ref, name=f"{stem} (strict)")
    result = compare_image(ours, ref, name=stem, edge_flips_ok=True)
    print(format_report([strict, result]))
    assert result.ok, format_report([strict, result])
    # only through boundary cases, and no more of them than matterport shows against itself on another CPU
    assert len(result.detections.excused_ref) <= MATTERPORT_SELF_BOUNDARY
    assert len(result.detections.excused_ours) <= MATTERPORT_SELF_BOUNDARY


def test_matterport_against_itself_on_another_cpu():
    """matterport's own code, the same .h5 and image, on an Intel Xeon (the fixture) and an AMD EPYC
    (r50_c81_s0_amd): TensorFlow's convolutions round differently, and the boundary cases flip there too
    (94 vs 93 detections: ROI 73's class 79 at 0.968 on the Xeon only, the edge flip our port shows).
    The bound above is this measured amount; everything else agrees as closely as our port does."""
    from maskrcnn.evaluation.parity import compare_image, format_report
    from maskrcnn.evaluation.parity_compact import expand_compact

    stem = "3825919971_93fb1ec581_b"
    with np.load(FIXTURES / "r50_c81_s0" / f"{stem}.npz") as data:
        xeon = {k: data[k] for k in data.files}
    with np.load(FIXTURES / "r50_c81_s0_amd" / f"{stem}.npz") as data:
        amd = expand_compact({k: data[k] for k in data.files})
    assert (len(xeon["scores"]), len(amd["scores"])) == (94, 93)
    strict = compare_image(amd, xeon, name=f"{stem}: matterport on AMD vs on Intel (strict)")
    result = compare_image(amd, xeon, name=f"{stem}: matterport on AMD vs on Intel", edge_flips_ok=True)
    print(format_report([strict, result]))
    assert not strict.ok and result.ok
    assert (len(result.detections.excused_ref), len(result.detections.excused_ours)) == (MATTERPORT_SELF_BOUNDARY, 1)
