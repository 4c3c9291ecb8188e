"""
Imported by the extraction fork server only: it dies with its owner.

multiprocessing's fork server exits when the process that started it closes
its end of a pipe, but every child it forks holds that end too, so a worker
killed by SIGKILL left the server, and the child reading a document, alive
until the document was done. Killed with its owner, the server takes its
children with it (each asks for SIGKILL when its parent dies, see
``child._die_with``).
"""

from __future__ import annotations

import os

from docmill.extract.child import OWNER_VARIABLE, die_with_parent

die_with_parent()
_owner = os.environ.get(OWNER_VARIABLE, "")
if _owner.isdigit() and os.getppid() != int(_owner):
    # The owner died before the request took hold.
    os._exit(1)
