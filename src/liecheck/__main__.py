"""``python -m liecheck`` (and ``torchrun -m liecheck``): the command line."""

import sys

from .cli import main

sys.exit(main())
