"""``python -m safety ...``: see :mod:`safety.cli`."""

from __future__ import annotations

import sys

from safety.cli import main

sys.exit(main())
