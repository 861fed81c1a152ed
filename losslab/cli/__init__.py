"""The ``losslab`` command line: one module per command family, the options and their support.

Nothing below this package imports it. ``main`` is the console script's entry point.
"""

from __future__ import annotations

from losslab.cli.main import main

__all__ = ["main"]
