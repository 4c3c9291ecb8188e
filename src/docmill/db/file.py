"""
A SQLite database file that is gone or replaced under a running server.

SQLite keeps writing to a file deleted under it (the open descriptor still
names the old inode), and a connection opened afterwards creates a fresh,
empty file at the path: writes kept getting 202 into the deleted file while
new pool connections answered "no such table". Neither is something to
repair in place; the server says it is not ready and logs why, and the
operator restores the file or restarts on a good one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy.engine import make_url

logger = logging.getLogger(__name__)


def sqlite_path(database_url: str) -> Path | None:
    """The file a SQLite URL names; None for an in-memory or other database."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite"):
        return None
    if not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


class DatabaseFile:
    """The identity (device, inode) of the SQLite file the server opened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.identity: tuple[int, int] | None = None
        self.intact = True

    def remember(self) -> None:
        """Take the file's identity: once the server has opened it."""
        with_stat = os.stat(self.path)
        self.identity = (with_stat.st_dev, with_stat.st_ino)

    def check(self) -> bool:
        """Whether the path still names the file the server opened."""
        if self.identity is None:
            return True
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            problem = "was deleted"
        else:
            if (now.st_dev, now.st_ino) == self.identity:
                self.intact = True
                return True
            problem = "was replaced by another file"
        if self.intact:
            # One line when it happens, not one per probe.
            logger.error(
                "the SQLite database %s %s while the server ran; writes go to "
                "a file no one will find. Restore it, or restart on the right "
                "file",
                self.path,
                problem,
                extra={"action": "database_file_lost"},
            )
        self.intact = False
        return False


def warn_if_originals_orphaned(database: Path, originals: Path, new: bool) -> None:
    """
    At start-up: a database file that was just created next to stored
    originals most likely replaced a lost one, and those originals belong
    to no document. Say so, rather than serve an empty list silently.
    """
    if not new or not originals.is_dir():
        return
    if not any(originals.glob("??/*")):
        return
    logger.warning(
        "the SQLite database %s is new, but %s holds originals: was the "
        "database file lost or moved? Its documents are not in this one",
        database,
        originals,
        extra={"action": "database_file_new"},
    )
