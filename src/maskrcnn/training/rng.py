"""Random-number-generator state: seeding, capture and restore (torch, CUDA, numpy, python).

States are converted to tensors, lists and ints so that a checkpoint holding them loads
with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def derive_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed mixed from ``seed`` and ``parts`` (e.g. epoch, rank), stable across runs and platforms."""
    gen = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, *(int(p) for p in parts)])
    high, low = (int(v) for v in gen.generate_state(2, dtype=np.uint32))
    return ((high << 32) | low) & ((1 << 63) - 1)


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global RNG and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)  # also seeds all CUDA devices


def capture_rng_state() -> dict[str, Any]:
    """The states of every global RNG, as tensors and plain values."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` returned (CUDA states only where devices match)."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def worker_init_fn(worker_id: int) -> None:
    """DataLoader workers: seed numpy and python from the worker's torch seed (which torch derives
    from the loader's base seed, itself drawn from the epoch-seeded global RNG)."""
    seed = torch.initial_seed() % (1 << 32)
    np.random.seed(seed)
    random.seed(seed)
