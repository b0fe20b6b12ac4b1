"""``maskrcnn demo``: offline end-to-end demo on synthetic shapes (train, evaluate, detect, splash, inspect).

    maskrcnn demo                      # a fixed amount of training: about 5 minutes on 2 idle CPU cores
    maskrcnn demo --out /tmp/demo --steps 800
    maskrcnn demo --minutes 2          # a time box instead (the model is then less trained)
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..apps.demo import DEMO_STEPS, EVAL_IMAGES

    parser.add_argument("--out", default="maskrcnn_demo", metavar="DIR",
                        help="folder to write everything to (default: ./maskrcnn_demo)")
    parser.add_argument("--steps", type=int, default=None, metavar="N",
                        help=f"training steps (default {DEMO_STEPS}: the same model and mAP idle or busy, "
                             f"a slower one only takes longer)")
    parser.add_argument("--eval-images", type=int, default=None, metavar="N",
                        help=f"held-out images the mAP is measured on (default {EVAL_IMAGES})")
    parser.add_argument("--minutes", type=float, default=None, metavar="X",
                        help="a time box for the whole demo instead: training stops when the rest needs the time "
                             "left (the model then depends on the machine's speed)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch threads (default 1: a second thread gains little here, and waits for a busy core)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the training (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")


def run(args: argparse.Namespace) -> int:
    from ..apps.demo import run_demo
    from ..errors import MaskRCNNError

    if args.minutes is not None and not args.minutes > 0:
        raise MaskRCNNError(f"--minutes {args.minutes}: must be positive")
    for name in ("steps", "eval_images", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise MaskRCNNError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least 1")
    threads = {} if args.threads is None else {"threads": args.threads}
    run_demo(args.out, steps=args.steps, eval_images=args.eval_images, minutes=args.minutes, seed=args.seed,
             device=args.device, **threads)
    return 0
