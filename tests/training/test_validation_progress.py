"""Validation loss after each epoch: proportionate by default (capped steps) and never silent (progress)."""

from __future__ import annotations

import re

import pytest
import torch
from training_standin import StandInModel, StandInSamples, collate

from maskrcnn.training.api import fit
from maskrcnn.training.options import TrainOptions, validation_steps
from maskrcnn.training.trainer import Hook

pytestmark = pytest.mark.usefixtures("one_thread")


def _opts(**kw):
    base = {"learning_rate": 0.05, "steps_per_epoch": 8, "validation_steps": 50, "images_per_gpu": 2, "seed": 7,
            "keep_last": 1, "best_metric": "train.loss", "eval_every": 0}
    base.update(kw)
    return TrainOptions(**base)


def test_validation_steps_are_capped_by_one_pass_and_the_epoch():
    # matterport's 50 batches, 13 validation images of 2 per batch: one pass is 7 batches.
    assert validation_steps(_opts(steps_per_epoch=1000), 13) == 7
    assert validation_steps(_opts(steps_per_epoch=1000), 13, world_size=2) == 4  # ceil(13 / 4) per rank
    assert validation_steps(_opts(steps_per_epoch=8), 1000) == 2  # a quarter of the epoch's steps
    assert validation_steps(_opts(steps_per_epoch=2), 1000) == 1  # at least one
    assert validation_steps(_opts(steps_per_epoch=1000, validation_steps=3), 1000) == 3  # the bound itself
    assert validation_steps(_opts(validation_steps=0), 100) == 0
    assert validation_steps(_opts(), 0) == 0


class _CountValidation(Hook):
    def __init__(self) -> None:
        self.announced: list[int] = []
        self.batches = 0

    def before_validation(self, trainer, steps: int) -> None:
        self.announced.append(steps)

    def after_validation_step(self, trainer) -> None:
        self.batches += 1


@pytest.mark.parametrize("mode", ["plain", "bar"])
def test_validation_runs_the_capped_batches_and_shows_progress(tmp_path, capsys, mode):
    torch.manual_seed(0)
    counter = _CountValidation()
    result = fit(StandInModel(), StandInSamples(10), collate, epochs=1, options=_opts(),
                 val_samples=StandInSamples(6, seed=1), logs_dir=tmp_path, name="standin", device="cpu",
                 progress=mode, tensorboard=False, hooks=[counter])
    assert counter.announced == [2] and counter.batches == 2  # min(50, one pass = 3, 8 // 4 = 2)
    assert result.history[0]["val"]["loss"] > 0
    err = capsys.readouterr().err
    if mode == "plain":
        assert "validation loss: 2 batches of 2 images" in err
    else:
        assert re.search(r"validation: +\d+%\|.*\| [0-2]/2 ", err)  # its own bar, 2 batches
