"""Schedules, optimizer groups, options, RNG state, sampler, run folders: exact expectations."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from maskrcnn.config import Config
from maskrcnn.errors import ConfigError, WeightsError
from maskrcnn.training.optim import build_optimizer, parameter_groups
from maskrcnn.training.options import TrainOptions
from maskrcnn.training.rng import (
    capture_rng_state,
    derive_seed,
    restore_rng_state,
    seed_everything,
)
from maskrcnn.training.rundir import (
    checkpoint_epoch,
    checkpoint_name,
    find_last,
    list_checkpoints,
    new_run_dir,
    run_dirs,
)
from maskrcnn.training.sampler import EpochSampler, epoch_indices
from maskrcnn.training.schedule import LRSchedule


# ---------------------------------------------------------------- schedule
def test_warmup_then_constant_by_hand():
    s = LRSchedule(kind="constant", start_step=10, end_step=100, warmup_steps=4, warmup_factor=0.2)
    # k = step - 10: factor = 0.2 + 0.8 * k / 4 for k < 4
    assert [s.factor(10 + k) for k in range(6)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])


def test_step_schedule_uses_absolute_epochs():
    s = LRSchedule(kind="step", steps_per_epoch=5, milestones=(2, 3), gamma=0.1, end_step=50)
    assert s.factor(9) == 1.0
    assert s.factor(10) == pytest.approx(0.1)  # epoch 2 starts at step 10
    assert s.factor(14) == pytest.approx(0.1)
    assert s.factor(15) == pytest.approx(0.01)


def test_cosine_schedule_endpoints_and_middle():
    s = LRSchedule(kind="cosine", start_step=0, end_step=100, min_factor=0.1)
    assert s.factor(0) == pytest.approx(1.0)
    assert s.factor(50) == pytest.approx(0.1 + 0.9 * 0.5)
    assert s.factor(100) == pytest.approx(0.1)
    assert s.factor(150) == pytest.approx(0.1)  # clamped past the end
    assert s.factor(25) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))


def test_schedule_apply_and_state_round_trip():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.5)
    s = LRSchedule(kind="constant", warmup_steps=2, warmup_factor=0.5)
    assert s.apply(opt, 0) == pytest.approx(0.25)
    assert s.apply(opt, 1) == pytest.approx(0.375)
    assert s.apply(opt, 5) == pytest.approx(0.5)
    assert LRSchedule.from_state_dict(s.state_dict()) == s
    with pytest.raises(ConfigError):
        LRSchedule(kind="linear")


# ---------------------------------------------------------------- optimizer
class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.gn = nn.GroupNorm(2, 4)
        self.fc = nn.Linear(4, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def test_no_weight_decay_on_norms_and_biases_and_frozen_left_out():
    net = _Net()
    groups = parameter_groups(net, 1e-4)
    names = {id(p): n for n, p in net.named_parameters()}
    decay = sorted(names[id(p)] for p in groups[0]["params"])
    no_decay = sorted(names[id(p)] for p in groups[1]["params"])
    assert decay == ["conv.weight", "fc.weight"]
    assert no_decay == ["bn.bias", "bn.weight", "conv.bias", "fc.bias", "gn.bias", "gn.weight"]
    assert groups[0]["weight_decay"] == 1e-4 and groups[1]["weight_decay"] == 0.0


def test_build_optimizer_kinds():
    net = _Net()
    sgd = build_optimizer(net, TrainOptions(learning_rate=0.1, momentum=0.8))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.8
    adamw = build_optimizer(net, TrainOptions(learning_rate=0.1, optimizer="adamw", adam_betas=(0.8, 0.9)))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["betas"] == (0.8, 0.9)
    assert adamw.defaults["fused"] is True  # one pass per tensor: the CPU default loops over tensors in Python


def test_fused_adamw_steps_like_the_reference_loop():
    torch.manual_seed(0)
    nets = [nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 2))
            for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    fused = build_optimizer(nets[0], TrainOptions(learning_rate=0.01, optimizer="adamw"))
    loop = torch.optim.AdamW(parameter_groups(nets[1], TrainOptions(learning_rate=0.01).weight_decay), lr=0.01, foreach=False)
    x = torch.randn(2, 3, 8, 8)
    for _ in range(3):
        for net, opt in zip(nets, (fused, loop)):
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- options
def test_options_from_matterport_config_and_extras():
    class C(Config):
        NUM_CLASSES = 2
        LEARNING_RATE = 0.02
        STEPS_PER_EPOCH = 7
        LR_SCHEDULE = "cosine"  # a subclass may declare the training attributes itself
        GRADIENT_ACCUMULATION = 3

    opts = TrainOptions.from_config(C())
    assert (opts.learning_rate, opts.steps_per_epoch, opts.schedule, opts.accumulation) == (0.02, 7, "cosine", 3)
    assert opts.optimizer == "sgd" and opts.amp is None and opts.keep_last == 3
    assert TrainOptions.from_config(C(), learning_rate=0.5, seed=4).learning_rate == 0.5
    with pytest.raises(ConfigError, match="OPTIMIZER='adam'"):
        TrainOptions.from_config(C(), optimizer="adam")


# ---------------------------------------------------------------- RNG
def test_rng_state_round_trip_through_weights_only_checkpoint(tmp_path):
    seed_everything(3)
    state = capture_rng_state()
    a = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    torch.save({"rng": state}, tmp_path / "s.pth")
    restore_rng_state(torch.load(tmp_path / "s.pth", weights_only=True)["rng"])
    b = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    assert a == b


def test_derive_seed_is_stable_and_mixes_parts():
    assert derive_seed(1, 2, 3) == derive_seed(1, 2, 3)
    assert len({derive_seed(1, 0), derive_seed(1, 1), derive_seed(2, 0), derive_seed(1, 0, 1)}) == 4
    assert 0 <= derive_seed(2**40, 7) < 2**63


# ---------------------------------------------------------------- sampler
def test_epoch_stream_cycles_full_passes():
    idx = epoch_indices(5, count=12, seed=1, epoch=0)
    assert sorted(idx[:5]) == list(range(5)) and sorted(idx[5:10]) == list(range(5))
    assert idx == epoch_indices(5, count=12, seed=1, epoch=0)
    assert idx != epoch_indices(5, count=12, seed=1, epoch=1)
    assert epoch_indices(4, count=6, seed=1, epoch=0, shuffle=False) == [0, 1, 2, 3, 0, 1]


def test_ranks_partition_the_single_process_stream():
    single = EpochSampler(10, samples_per_rank=8, seed=5)
    single.set_epoch(3)
    ranks = []
    for r in range(2):
        s = EpochSampler(10, samples_per_rank=4, seed=5, rank=r, world_size=2)
        s.set_epoch(3)
        ranks.append(list(s))
    stream = list(single)
    assert ranks[0] == stream[0::2] and ranks[1] == stream[1::2]
    # with per-rank batch 2, step k of rank r holds global positions 4k+r, 4k+r+2: together the global batch
    assert sorted(ranks[0][:2] + ranks[1][:2]) == sorted(stream[:4])
    assert len(single) == 8


# ---------------------------------------------------------------- run folders
def test_run_dir_and_checkpoint_names(tmp_path):
    import datetime as dt

    now = dt.datetime(2024, 5, 6, 7, 8, 9)
    d = new_run_dir(tmp_path, "Balloon", now=now)
    assert d.name == "balloon20240506T070809"
    d.mkdir()
    assert new_run_dir(tmp_path, "balloon", now=now).name == "balloon20240506T070809-2"
    assert checkpoint_name("Balloon", 3) == "mask_rcnn_balloon_0003.pth"
    assert checkpoint_epoch("x/mask_rcnn_balloon_0012.pth") == 12


def test_find_last_skips_runs_without_checkpoints(tmp_path):
    old = tmp_path / "shapes20240101T000000"
    new = tmp_path / "shapes20240102T000000"
    other = tmp_path / "shapes220240103T000000"  # NAME "shapes2", not "shapes"
    for d in (old, new, other):
        d.mkdir()
    (old / "mask_rcnn_shapes_0001.pth").write_bytes(b"x")
    (old / "mask_rcnn_shapes_0010.pth").write_bytes(b"x")
    (old / "mask_rcnn_shapes_0002.pth").write_bytes(b"x")
    (other / "mask_rcnn_shapes2_0001.pth").write_bytes(b"x")
    assert run_dirs(tmp_path, "shapes") == [old, new]
    assert find_last(tmp_path, "shapes") == old / "mask_rcnn_shapes_0010.pth"
    (new / "mask_rcnn_shapes_0001.pth").write_bytes(b"x")
    assert find_last(tmp_path, "shapes") == new / "mask_rcnn_shapes_0001.pth"
    assert [p.name for p in list_checkpoints(old)] == [f"mask_rcnn_shapes_{e:04d}.pth" for e in (1, 2, 10)]
    with pytest.raises(WeightsError, match="no run folder"):
        find_last(tmp_path, "balloon")
    (tmp_path / "balloon20240101T000000").mkdir()
    with pytest.raises(WeightsError, match="no checkpoint"):
        find_last(tmp_path, "balloon")
