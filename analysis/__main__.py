"""``python -m analysis``: see ``analysis.cli``."""

import sys

from .cli import main

raise SystemExit(main(sys.argv[1:]))
