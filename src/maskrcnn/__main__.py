"""``python -m maskrcnn`` (and ``torchrun -m maskrcnn``) runs the CLI."""

import sys

from .cli import main

sys.exit(main())
