"""``python -m core``: the RS-SAGE command line."""

import sys

from .cli import main

sys.exit(main())
