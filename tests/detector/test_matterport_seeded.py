"""The TensorFlow-free matterport seeded weights equal reference.py's, tensor for tensor.

The committed tables (tests/fixtures/matterport/<name>_weights.json) hold, per tensor of the
``.h5`` that ``reference.py --seed 0 --save-h5`` wrote with matterport's own code, its shape and a
float32 checksum; here the same tensors are regenerated from numpy alone and compared.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import matterport_seeded as ms

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "matterport"
TABLES = sorted(p.name[: -len("_weights.json")] for p in FIXTURES.glob("*_weights.json"))


def _table(name):
    table = ms.load_checksums(FIXTURES / f"{name}_weights.json")
    return table, dict(backbone=table["backbone"], num_classes=table["num_classes"], seed=table["seed"])


def test_the_fixtures_are_there():
    assert "r50_c81_s0" in TABLES


@pytest.mark.parametrize("name", TABLES)
def test_layout_is_matterports(name):
    table, layout = _table(name)
    layers = ms.matterport_layers(backbone=layout["backbone"], num_classes=layout["num_classes"])
    assert [layer.name for layer in layers] == table["layer_names"]
    specs = ms.tensor_specs(backbone=layout["backbone"], num_classes=layout["num_classes"])
    assert list(specs) == list(table["tensors"])  # same tensors, in file order
    assert {k: list(v) for k, v in specs.items()} == {k: v[0] for k, v in table["tensors"].items()}
    weighted = {"resnet50": (131, 384), "resnet101": (233, 690)}[layout["backbone"]]
    assert (sum(1 for layer in layers if layer.weights), len(specs)) == weighted


@pytest.mark.parametrize("name", TABLES)
def test_every_tensor_equals_the_reference(name):
    table, layout = _table(name)
    weights = ms.seeded_weights(calibration=ms.load_calibration(FIXTURES / f"{name}_calibration.npz"), **layout)
    assert {k: ms.checksum(v) for k, v in weights.items()} == {k: v[2] for k, v in table["tensors"].items()}
    assert all(v.dtype == np.float32 for v in weights.values())


def test_the_checksums_see_the_calibration():
    """Without the calibrated heads exactly those four tensors differ: the table check can fail."""
    table, layout = _table("r50_c81_s0")
    weights = ms.seeded_weights(calibration=None, **layout)
    differ = sorted(k for k, v in weights.items() if ms.checksum(v) != table["tensors"][k][2])
    assert differ == sorted(f"{prefix}/{w}:0" for prefix in ms.CALIBRATED for w in ("kernel", "bias"))
    assert ms.checksum(ms.seeded_weights(calibration=None, backbone="resnet50", num_classes=81, seed=1)
                       ["conv1/conv1/kernel:0"]) != table["tensors"]["conv1/conv1/kernel:0"][2]


def test_write_seeded_h5_is_matterports_file(tmp_path):
    table, layout = _table("r50_c81_s0")
    path = ms.write_seeded_h5(tmp_path / "r50.h5", calibrated_npz=FIXTURES / "r50_c81_s0_calibration.npz", **layout)
    assert ms.h5_checksums(path) == {"layer_names": table["layer_names"], "tensors": table["tensors"]}
    with h5py.File(path, "r") as f:
        assert f.attrs["keras_version"] == "2.21.0" and f.attrs["backend"] == "tensorflow"
        assert list(f["rpn_model"].attrs["weight_names"])[:2] == ["rpn_conv_shared/kernel:0", "rpn_conv_shared/bias:0"]
        assert f["rpn_model/rpn_conv_shared/kernel:0"].shape == (3, 3, 256, 512)
        assert f["mrcnn_mask_deconv/mrcnn_mask_deconv/kernel:0"].shape == (2, 2, 256, 256)
        assert len(f["activation"].attrs["weight_names"]) == 0


def test_unknown_backbone_is_one_clear_error():
    with pytest.raises(ValueError, match="backbone 'resnet18'"):
        ms.matterport_layers(backbone="resnet18")
