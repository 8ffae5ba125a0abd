"""``python -m ssimsr``: the ``ssimsr`` command."""

import sys

from .cli import main

sys.exit(main())
