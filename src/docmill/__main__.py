"""``python -m docmill``: the same CLI as the ``docmill`` command."""

from docmill.cli import main

main()
