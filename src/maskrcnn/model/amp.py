"""Automatic mixed precision: the one place that turns ``"fp16"``/``"bf16"`` into ``torch.autocast``.

AMP runs on CUDA only (float16 or bfloat16 autocast: convolutions and matrix products in half
precision, reductions and losses in float32). On the CPU the same setting gives a null context:
bfloat16 autocast on CPUs without AMX is slower than float32, and the results would differ from
the CPU's float32 ones for nothing. Used by training (``AMP`` in the config) and by inference
(:attr:`maskrcnn.model.network.MaskRCNNNetwork.inference_amp`).
"""

from __future__ import annotations

import contextlib

import torch

AMP_MODES = ("fp16", "bf16")


def check_amp(amp: str | None, *, what: str = "amp") -> str | None:
    """``None`` or one of :data:`AMP_MODES` (case-insensitive; ``"none"`` → None); anything else raises."""
    if amp is None or (isinstance(amp, str) and amp.lower() in ("", "none")):
        return None
    value = str(amp).lower()
    if value not in AMP_MODES:
        raise ValueError(f"{what}={amp!r}: choose fp16, bf16 or None")
    return value


def autocast_context(amp: str | None, device: torch.device | str):
    """``torch.autocast`` in ``amp``'s dtype on CUDA; a null context for ``amp=None`` or another device."""
    device = torch.device(device)
    if amp is None or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)
