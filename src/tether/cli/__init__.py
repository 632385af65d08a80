"""The ``tether`` command line."""

from tether.cli._main import main

__all__ = ["main"]
