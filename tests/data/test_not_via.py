"""A ``via_region_data.json`` that parses but is not VIA: the error names the file and what was expected.

Before: a folder holding ``[]`` or ``{}`` as ``via_region_data.json`` said "no annotations found".
"""

from __future__ import annotations

import pytest

from maskrcnn.cli import main
from maskrcnn.data.loading import load_dataset
from maskrcnn.errors import DatasetError

EXPECTED = ("(expected a VIA export (an object keyed by '<filename><size>' whose entries have 'filename' and "
            "'regions') or a VIA project (an object with '_via_img_metadata'))")


@pytest.mark.parametrize("text, what", [("[]", "a JSON list of 0 items"), ("{}", "an empty JSON object"),
                                        ('[{"a": 1}]', "a JSON list of 1 item"),
                                        ('{"x": 1, "y": [2]}', "a JSON object with keys 'x', 'y'")])
@pytest.mark.parametrize("target", ["folder", "file"])
def test_not_via_with_format_via_names_the_file_and_what_was_expected(tmp_path, text, what, target):
    path = tmp_path / "via_region_data.json"
    path.write_text(text)
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path if target == "folder" else path, format="via")
    assert str(info.value) == f"{path}: is {what}, not VIA annotations {EXPECTED}"


def test_not_a_known_format_in_auto_mode_names_the_file(tmp_path):
    (tmp_path / "via_region_data.json").write_text("[]")
    with pytest.raises(DatasetError, match=r"via_region_data\.json: is a JSON list of 0 items, not a known "
                                           r"annotation format"):
        load_dataset(tmp_path)


def test_cli_check_dataset_subset_with_an_empty_via_file(tmp_path, capsys):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "via_region_data.json").write_text("{}")
    assert main(["check-dataset", str(tmp_path), "--subset", "train", "--format", "via"]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'train' / 'via_region_data.json'}: is an empty JSON object, not VIA annotations" in out
