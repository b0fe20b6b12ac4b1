"""Distributed data-parallel training set-up (torchrun + DistributedDataParallel).

One process per GPU (or per CPU worker), started by ``torchrun``, which sets ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``::

    # one machine, 4 GPUs (NCCL); torchrun would read --logs as its --logs-specs: say --logs-dir
    torchrun --nproc_per_node 4 -m maskrcnn train --dataset data/balloon --logs-dir logs ...
    # CPU processes (gloo)
    torchrun --nproc_per_node 2 -m maskrcnn train --device cpu ...
    # two machines, 8 GPUs each: run on every node, same rendezvous endpoint
    torchrun --nnodes 2 --nproc_per_node 8 --node_rank <0|1> \\
             --rdzv_backend c10d --rdzv_endpoint <host0>:29500 -m maskrcnn train ...

Semantics: every process runs ``IMAGES_PER_GPU`` images per micro-batch, gradients are
averaged by DDP, so one optimizer step sees ``IMAGES_PER_GPU × WORLD_SIZE ×
GRADIENT_ACCUMULATION`` images; an epoch is still ``STEPS_PER_EPOCH`` optimizer steps.
Sampling is :class:`~maskrcnn.training.sampler.EpochSampler` (each rank a disjoint
stride of the epoch's stream). Only rank 0 writes checkpoints, logs and evaluates.

Equivalence with one process on the global batch holds when the per-process losses
average to the global loss: true for losses that are per-image means and for
normalization that does not mix images (frozen BatchNorm or GroupNorm, not BatchNorm in
training mode; use ``BACKBONE_NORM = "gn"`` or ``"frozen_bn"`` for multi-process runs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from ..errors import MaskRCNNError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: str | torch.device | None = None, *, backend: str | None = None) -> DistContext:
    """Join the process group described by torchrun's environment variables, if any.

    device: ``"cuda"``/``"cpu"``/None (None: CUDA when available). With CUDA, each
    process takes ``cuda:<LOCAL_RANK>`` and the NCCL backend; on CPU, gloo.
    A single process (no ``WORLD_SIZE`` > 1) gets a context without a process group.
    """
    world_size = env_world_size()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None and world_size == 1 else local_rank
        count = torch.cuda.device_count()
        if index >= count:
            raise MaskRCNNError(
                f"cuda:{index} does not exist (this machine has {count} CUDA device(s); LOCAL_RANK={local_rank}, "
                f"WORLD_SIZE={world_size}): start one process per GPU (torchrun --nproc_per_node {max(count, 1)}) "
                f"or train on the CPU with --device cpu")
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if device.type == "cuda" else "gloo")
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    if dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """``DistributedDataParallel(model)`` in a multi-process run, else the model itself.

    ``find_unused_parameters=True``: a batch without positives may leave a head unused.
    """
    if not ctx.distributed:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def all_reduce_mean(values: dict[str, float], ctx: DistContext) -> dict[str, float]:
    """Average scalars over ranks (identity in a single process)."""
    if not ctx.distributed or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.to(ctx.device)
    dist.all_reduce(t)
    t = (t / ctx.world_size).cpu()
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def all_true(flag: bool, ctx: DistContext) -> bool:
    """Whether ``flag`` holds on every rank (so all ranks stop together)."""
    if not ctx.distributed:
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    if dist.get_backend() == "nccl":
        t = t.to(ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def broadcast_object(obj, ctx: DistContext):
    """Rank 0's ``obj`` on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def cleanup(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
