"""``python -m docmill``: the same CLI as the ``docmill`` command."""

from __future__ import annotations

from docmill.cli import main

main()
