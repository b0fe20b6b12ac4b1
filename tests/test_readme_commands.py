"""Every ``maskrcnn`` command of the README's command-line section parses, reads the data that
``maskrcnn download balloon`` installs, and writes where ``.gitignore`` expects."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from maskrcnn import cli

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## The command line", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    block = re.sub(r"\\\n\s*", " ", block)  # continuation lines
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words[:2] == ["torchrun", "--nproc_per_node"]:
            words = words[4:]  # "-m maskrcnn" follows
        if words and words[0] == "maskrcnn":
            commands.append(words[1:])
    return commands


def test_readme_commands_parse_and_start_with_the_download():
    commands = _commands()
    assert commands[0] == ["download", "balloon"] and len(commands) >= 10
    for argv in commands:
        name = argv[0]
        args = cli._parser_for(name).parse_args(argv)  # SystemExit on an unknown option
        assert args.command == name
        for key in ("dataset", "path"):
            value = getattr(args, key, None)
            if value is not None:
                assert value == "data/balloon", argv
        images = [getattr(args, "image", None)] + list(getattr(args, "images", None) or [])
        assert all(i is None or i.startswith("data/balloon/val") for i in images), argv


def test_gitignore_covers_the_default_outputs():
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    outputs = ["data/balloon/train/a.jpg", "logs/balloon20260101T000000/mask_rcnn_balloon_0020.pth",
               "shown/000.png", "metrics.json", "detections/predictions.json", "report.html", "model.onnx",
               "splash_x_20260101T000000.png", "maskrcnn_demo/report.html"]
    result = subprocess.run(["git", "check-ignore", "--no-index", *outputs], cwd=ROOT, capture_output=True,
                            text=True)
    assert sorted(result.stdout.split()) == sorted(outputs)
    kept = ["src/maskrcnn/data/catalog.py", "tests/data/test_catalog.py"]
    assert subprocess.run(["git", "check-ignore", "--no-index", *kept], cwd=ROOT, capture_output=True,
                          text=True).stdout == ""
