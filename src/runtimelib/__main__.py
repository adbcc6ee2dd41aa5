"""``python -m runtimelib``: the ``runtimelib`` command."""

from runtimelib.cli import entry_point

entry_point()
