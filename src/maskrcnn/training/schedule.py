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
    cosine   = m + (1 - m) * (1 + cos(pi * k / (end_step - start_step))) / 2   (m = min_factor)
    lr       = base_lr * warmup * main
"""

from __future__ import annotations

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
        if self.kind == "step":
            passed = sum(1 for m in self.milestones if step >= m * self.steps_per_epoch)
            main = self.gamma ** passed
        elif self.kind == "cosine":
            span = max(self.end_step - self.start_step, 1)
            progress = min(max(k / span, 0.0), 1.0)
            main = self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            main = 1.0
        return warm * main

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
