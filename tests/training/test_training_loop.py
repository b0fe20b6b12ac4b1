"""The trainer on a stand-in model: checkpoints, logs, retention, exact resume, accumulation, NaN guard."""

from __future__ import annotations

import json

import pytest
import torch
from training_standin import StandInModel, StandInSamples, collate

from maskrcnn.training.api import fit
from maskrcnn.training.options import TrainOptions
from maskrcnn.training.trainer import Hook, TrainingDiverged
from maskrcnn.weights import read_checkpoint, training_state

pytestmark = pytest.mark.usefixtures("one_thread")


def _opts(**kw):
    base = {"learning_rate": 0.05, "steps_per_epoch": 3, "validation_steps": 1, "images_per_gpu": 2, "seed": 7,
                "keep_last": 2, "best_metric": "val_loss", "eval_every": 0}
    base.update(kw)
    return TrainOptions(**base)


def _fit(model, tmp_path, epochs, **kw):
    opts = kw.pop("options", None) or _opts()
    return fit(model, StandInSamples(10), collate, epochs=epochs, options=opts, val_samples=StandInSamples(4, seed=1),
               logs_dir=tmp_path, name="standin", device="cpu", progress=kw.pop("progress", "none"),
               tensorboard=kw.pop("tb", False),
               **kw)


def _equal_states(a, b, atol=0.0):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max(float((sa[k].float() - sb[k].float()).abs().max()) for k in sa) <= atol


def test_fit_writes_checkpoints_logs_and_keeps_last_and_best(tmp_path):
    torch.manual_seed(0)
    model = StandInModel()
    result = _fit(model, tmp_path, 4, tb=True, options=_opts(best_metric="train.loss", keep_last=2))
    assert result.epoch == 4 and result.global_step == 12
    run = result.run_dir
    assert run.parent == tmp_path and run.name.startswith("standin")
    names = sorted(p.name for p in run.glob("mask_rcnn_*.pth"))
    best_epoch = result.best["epoch"]
    assert set(names) == {f"mask_rcnn_standin_{e:04d}.pth" for e in {3, 4, best_epoch}}
    assert not list(run.glob(".*.tmp"))
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3, 4]
    assert set(lines[0]["train"]) == {"loss", "rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss",
                                      "mrcnn_bbox_loss", "mrcnn_mask_loss"}
    assert lines[0]["val"]["loss"] > 0 and lines[-1]["global_step"] == 12
    assert list(run.glob("events.out.tfevents.*"))
    train_losses = [r["train"]["loss"] for r in lines]
    assert min(range(4), key=lambda i: train_losses[i]) + 1 == best_epoch
    ck = read_checkpoint(result.last_checkpoint)
    state = training_state(ck)
    assert (state["epoch"], state["global_step"], state["seed"]) == (4, 12, 7)
    assert {"optimizer", "schedule", "scaler", "rng", "options", "stage"} <= set(state)
    assert state["stage"]["layers"] == "all"


class _Crash(Hook):
    """Simulates a killed process in the middle of an epoch."""

    def __init__(self, at_global_step):
        self.at = at_global_step

    def after_step(self, trainer, info):
        if info.global_step == self.at:
            raise KeyboardInterrupt("killed")


def test_resume_from_last_equals_uninterrupted(tmp_path):
    opts = _opts(schedule="cosine", warmup_steps=2, accumulation=2)
    torch.manual_seed(1)
    full = StandInModel()
    init = {k: v.clone() for k, v in full.state_dict().items()}
    _fit(full, tmp_path / "a", 3, options=opts)

    part = StandInModel()
    part.load_state_dict(init)
    with pytest.raises(KeyboardInterrupt):
        _fit(part, tmp_path / "b", 3, options=opts, hooks=[_Crash(5)])  # in epoch 2 (steps 4-6)
    assert [p.name for p in (tmp_path / "b").rglob("*.pth")] == ["mask_rcnn_standin_0001.pth"]
    resumed = StandInModel()  # fresh weights: everything must come from the checkpoint
    result = _fit(resumed, tmp_path / "b", 3, options=opts, resume="last")
    assert result.epoch == 3 and result.global_step == 9
    assert "resuming" in result.message
    assert _equal_states(full, resumed, atol=1e-6)
    again = _fit(StandInModel(), tmp_path / "b", 3, options=opts, resume="last")
    assert "nothing to train" in again.message and again.epoch == 3


class _Rates(Hook):
    """Records the learning rate of every step."""

    def __init__(self):
        self.rates = []

    def after_step(self, trainer, info):
        self.rates.append(info.lr)


def test_learning_rate_does_not_jump_back_up_on_resume(tmp_path):
    """A cosine stage trained to epoch 2, then resumed up to epoch 4 (same stage): the rate goes on falling
    from where it was, to the minimum at the new end, instead of restarting the cosine higher up."""
    opts = _opts(schedule="cosine", warmup_steps=2, lr_min_factor=0.1)
    torch.manual_seed(4)
    first, second = _Rates(), _Rates()
    _fit(StandInModel(), tmp_path, 2, options=opts, hooks=[first])
    result = _fit(StandInModel(), tmp_path, 4, options=opts, hooks=[second], resume="last")
    assert "resuming" in result.message and result.epoch == 4
    assert len(first.rates) == 6 and len(second.rates) == 6
    assert second.rates[0] <= first.rates[-1]  # no jump at the resume step (and no second warmup)
    after_warmup = first.rates[2:] + second.rates
    assert all(b <= a + 1e-12 for a, b in zip(after_warmup, after_warmup[1:])), after_warmup
    assert second.rates[-1] == pytest.approx(0.05 * 0.1, rel=0.2)  # reaches the minimum at the new end
    # resumed again with nothing changed, an interrupted stage follows its saved schedule exactly
    third = _Rates()
    with pytest.raises(KeyboardInterrupt):
        _fit(StandInModel(), tmp_path / "c", 4, options=opts, hooks=[third, _Crash(8)])
    fourth = _Rates()
    _fit(StandInModel(), tmp_path / "c", 4, options=opts, hooks=[fourth], resume="last")
    uninterrupted = _Rates()
    _fit(StandInModel(), tmp_path / "d", 4, options=opts, hooks=[uninterrupted])
    assert third.rates[:6] + fourth.rates == pytest.approx(uninterrupted.rates)


def test_changed_layers_start_a_new_stage(tmp_path):
    torch.manual_seed(2)
    model = StandInModel()
    _fit(model, tmp_path, 1, layers="heads")
    result = _fit(StandInModel(), tmp_path, 2, layers="all", resume="last")
    assert "new stage" in result.message
    state = training_state(read_checkpoint(result.last_checkpoint))
    assert state["stage"] == {"layers": "all", "learning_rate": 0.05, "optimizer": "sgd", "start_step": 3}


def test_accumulation_equals_a_bigger_batch(tmp_path):
    torch.manual_seed(3)
    a = StandInModel()
    b = StandInModel()
    b.load_state_dict(a.state_dict())
    _fit(a, tmp_path / "a", 2, options=_opts(images_per_gpu=4, accumulation=1))
    _fit(b, tmp_path / "b", 2, options=_opts(images_per_gpu=2, accumulation=2))
    assert _equal_states(a, b, atol=1e-6)


def test_non_finite_loss_stops_naming_step_and_images(tmp_path):
    model = StandInModel()
    bad = StandInSamples(10, nan_at=4)
    with pytest.raises(TrainingDiverged) as info:
        fit(model, bad, collate, epochs=3, options=_opts(steps_per_epoch=10), logs_dir=tmp_path, name="nan",
            device="cpu", progress="none", tensorboard=False, describe_image=lambda i: f"img{i}.jpg")
    text = str(info.value)
    assert "epoch 1, step" in text and "rpn_class_loss=nan" in text and "img4.jpg" in text
    assert not list(tmp_path.rglob("*.pth"))


def test_time_limit_stops_after_the_step_and_checkpoints_the_partial_epoch(tmp_path):
    result = _fit(StandInModel(), tmp_path, 5, time_limit=0.0)
    assert result.epoch == 1 and result.global_step == 1
    assert result.history[0]["stopped_early"] is True and result.history[0]["steps"] == 1
    assert [p.name for p in result.checkpoints] == ["mask_rcnn_standin_0001.pth"]


def test_validation_map_every_k_epochs_picks_the_best_checkpoint(tmp_path):
    scores = iter([0.3, 0.9, 0.5])  # evaluated after epochs 2, 4 and 5 (the last)
    calls = []

    def evaluate(model):
        calls.append(model.training)
        return {"segm": {"AP": next(scores), "AP50": 1.0}, "per_class": {"segm": {"a": 0.1}}}

    opts = _opts(eval_every=2, best_metric="segm.AP", keep_last=1)
    result = fit(StandInModel(), StandInSamples(10), collate, epochs=5, options=opts, logs_dir=tmp_path, name="ev",
                 device="cpu", progress="none", tensorboard=False, evaluate=evaluate)
    assert calls == [False, False, False]  # evaluated in eval mode
    assert [r["eval"].get("segm.AP") for r in result.history] == [None, 0.3, None, 0.9, 0.5]
    assert "per_class.segm.a" not in result.history[1]["eval"]
    assert result.best == {"metric": "segm.AP", "value": 0.9, "epoch": 4}
    assert [p.name for p in result.checkpoints] == ["mask_rcnn_ev_0004.pth", "mask_rcnn_ev_0005.pth"]


def test_failed_evaluation_warns_and_keeps_the_checkpoint(tmp_path):
    def evaluate(model):
        raise RuntimeError("pycocotools exploded")

    with pytest.warns(UserWarning, match="pycocotools exploded"):
        result = fit(StandInModel(), StandInSamples(10), collate, epochs=1, options=_opts(eval_every=1),
                     logs_dir=tmp_path, name="ev", device="cpu", progress="none", tensorboard=False,
                     evaluate=evaluate)
    assert [p.name for p in result.checkpoints] == ["mask_rcnn_ev_0001.pth"]


def test_progress_bar_and_epoch_summary(tmp_path, capsys):
    _fit(StandInModel(), tmp_path, 1, progress="bar")
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "3/3" in err  # the tqdm bar reached the end of the epoch
    assert "done in" in err and "train: loss=" in err and "val: loss=" in err
