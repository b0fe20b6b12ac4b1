"""Two gloo processes on CPU end with the parameters of one process on the same global batch."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp
from training_ddp_worker import real_model_run, standin_run, worker

pytestmark = pytest.mark.usefixtures("one_thread")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Run both workloads in 2 gloo processes once: forked (no re-import of torch), or spawned where CUDA
    is there (autograd's per-device threads, started by earlier tests of this process, do not survive a fork)."""
    out = tmp_path_factory.mktemp("ddp")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    start_method = "spawn" if torch.cuda.is_available() else "fork"
    try:
        mp.start_processes(worker, args=(2, _free_port(), str(out)), nprocs=2, join=True, start_method=start_method)
    finally:
        torch.set_num_threads(before)
    return out


def _load(out, kind):
    return [torch.load(out / f"{kind}_rank{r}.pth", weights_only=True) for r in range(2)]


def _max_diff(a, b) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


def test_two_processes_equal_one_process_standin(two_ranks, tmp_path):
    # per-image-mean losses, 13 different images, batch 2 per rank x accumulation 2 = global batch 8
    ranks = _load(two_ranks, "standin")
    single = standin_run(tmp_path, images_per_gpu=4)
    assert _max_diff(ranks[0], ranks[1]) == 0.0
    assert _max_diff(ranks[0], single) <= 1e-5
    # only rank 0 wrote files: one run folder with its checkpoints
    runs = list((two_ranks / "standin").iterdir())
    assert len(runs) == 1 and sorted(p.name for p in runs[0].glob("*.pth")) == [
        "mask_rcnn_standin_0001.pth", "mask_rcnn_standin_0002.pth"]


def test_two_processes_equal_one_process_real_model(two_ranks, tmp_path):
    # The model's losses are batch means (over sampled anchors, ROIs, positive masks): they equal the mean
    # of per-image losses when the images contribute equally, hence one repeated image and sampling that
    # keeps every anchor and ROI (see TinyShapesConfig).
    ranks = _load(two_ranks, "real")
    single = real_model_run(tmp_path, images_per_gpu=2)
    assert _max_diff(ranks[0], ranks[1]) == 0.0
    assert _max_diff(ranks[0], single) <= 1e-5


def test_two_processes_average_gradients_of_different_images_real_model(two_ranks, tmp_path):
    # Different images: 2 ranks x 1 image average their gradients, which one process computes with
    # GRADIENT_ACCUMULATION = 2 micro-batches of 1 image (sampling keeps everything, so no RNG enters).
    ranks = _load(two_ranks, "real_diff")
    single = real_model_run(tmp_path, images_per_gpu=1, repeated=False, accumulation=2)
    assert _max_diff(ranks[0], ranks[1]) == 0.0
    assert _max_diff(ranks[0], single) <= 1e-5
