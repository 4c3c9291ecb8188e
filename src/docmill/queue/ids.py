"""Identifiers that sort by creation time."""

from __future__ import annotations

import os
import secrets
import socket
import time


def new_document_id() -> str:
    """
    32 hex characters: 12 of milliseconds since the epoch, 20 random.

    Time-ordered ids keep inserts at the end of the primary-key index and make
    the id a stable tie-breaker for cursor pagination.
    """
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(10)}"


def new_claim_token() -> str:
    return secrets.token_hex(16)


def default_worker_id() -> str:
    """``host:pid``, stable for the life of the process."""
    return f"{socket.gethostname()}:{os.getpid()}"
