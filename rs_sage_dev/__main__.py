"""``python -m rs_sage_dev``: the RS-SAGE development commands."""

import sys

from .cli import main

sys.exit(main())
