"""``maskrcnn demo``: offline end-to-end demo on synthetic shapes (train, evaluate, detect, splash, inspect).

    maskrcnn demo                      # about 5 minutes on 2 CPU cores, writes ./maskrcnn_demo/
    maskrcnn demo --minutes 1 --out /tmp/demo
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="maskrcnn_demo", metavar="DIR",
                        help="folder to write everything to (default: ./maskrcnn_demo)")
    parser.add_argument("--minutes", type=float, default=5.0, metavar="X",
                        help="wall-clock budget of the whole demo; training gets what the rest leaves (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the training (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")


def run(args: argparse.Namespace) -> int:
    from ..apps.demo import run_demo
    from ..errors import MaskRCNNError

    if not args.minutes > 0:
        raise MaskRCNNError(f"--minutes {args.minutes}: must be positive")
    run_demo(args.out, minutes=args.minutes, seed=args.seed, device=args.device)
    return 0
