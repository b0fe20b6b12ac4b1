"""Learning-rate schedules: linear warmup, then constant (matterport), step or cosine.

A schedule is a pure function of the global optimizer step, so a resumed run gets the
same rate as an uninterrupted one. It spans one *stage* (one call of
:func:`maskrcnn.training.train`): from ``start_step`` (the global step when the stage
began; kept across resume) to ``end_step = epochs * STEPS_PER_EPOCH`` (epochs are
absolute, as matterport's). ``step`` milestones are absolute epochs too.

factor(s), with ``k = s - start_step`` steps into the stage::

    warmup   = f + (1 - f) * k / W     for k < W (W = warmup_steps, f = warmup_factor), else 1
    constant = 1
    step     = gamma ** #(milestones m with s >= m * steps_per_epoch)
    cosine   = m + (f0 - m) * (1 + cos(pi * (s - d) / (end_step - d))) / 2   (m = min_factor)
    lr       = base_lr * warmup * main

where the cosine decays from ``f0 = decay_start_factor`` at step ``d = decay_start`` (by default
1 at ``start_step``: the plain cosine of the stage).

**Resume never makes the rate jump back up.** A run resumed in the same stage keeps the stage's
``start_step`` (no new warmup); when the end moved (``epochs`` changed), :meth:`LRSchedule.continued`
restarts the cosine from the factor reached at the resume step, so the rate goes on falling from
where it was, to ``min_factor`` at the new end.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..errors import ConfigError


@dataclass
class LRSchedule:
    """Multiplicative factor of the base learning rate at a global optimizer step."""

    kind: str = "constant"
    start_step: int = 0
    end_step: int = 1
    steps_per_epoch: int = 1
    warmup_steps: int = 0
    warmup_factor: float = 0.001
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    min_factor: float = 0.0
    decay_start: int | None = None  # cosine: the step its decay starts from (None: start_step)
    decay_start_factor: float = 1.0  # cosine: the factor at decay_start

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "step", "cosine"):
            raise ConfigError(f"LR_SCHEDULE={self.kind!r}: choose constant, step or cosine")
        self.milestones = tuple(int(m) for m in self.milestones)

    def factor(self, step: int) -> float:
        """The learning-rate factor at global optimizer step ``step`` (0-based)."""
        k = step - self.start_step
        warm = 1.0
        if self.warmup_steps > 0 and k < self.warmup_steps:
            warm = self.warmup_factor + (1.0 - self.warmup_factor) * max(k, 0) / self.warmup_steps
        return warm * self.main_factor(step)

    def main_factor(self, step: int) -> float:
        """The factor of the schedule's kind at ``step``, without warmup."""
        if self.kind == "step":
            passed = sum(1 for m in self.milestones if step >= m * self.steps_per_epoch)
            return self.gamma ** passed
        if self.kind == "cosine":
            start = self.start_step if self.decay_start is None else self.decay_start
            span = max(self.end_step - start, 1)
            progress = min(max((step - start) / span, 0.0), 1.0)
            top = self.decay_start_factor
            return self.min_factor + (top - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    def continued(self, new: LRSchedule, step: int) -> LRSchedule:
        """The schedule a stage resumed at ``step`` follows: this one (the stage's saved schedule) when
        ``new`` (the schedule built for the resumed call) is the same, else ``new`` from this stage's
        start (no second warmup) with its cosine anchored at the factor this one reached at ``step``."""
        anchored = dataclasses.replace(new, start_step=self.start_step)
        if anchored == self:
            return self
        if new.kind == "cosine":
            anchored = dataclasses.replace(anchored, decay_start=int(step),
                                           decay_start_factor=max(self.main_factor(step), new.min_factor))
        return anchored

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set every param group's ``lr`` to ``initial_lr * factor(step)``; return the first group's rate."""
        f = self.factor(step)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
            group["lr"] = group["initial_lr"] * f
        return optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        state = asdict(self)
        state["milestones"] = list(self.milestones)
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> LRSchedule:
        return cls(**state)
