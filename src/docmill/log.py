"""Logging set-up: one line per event, with the request id when there is one."""

from __future__ import annotations

import logging
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("docmill_request_id", default="-")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"


def configure_logging(level: str = "info") -> None:
    """Send docmill's records to stderr in one format; idempotent."""
    root = logging.getLogger("docmill")
    root.setLevel(level.upper())
    if any(getattr(h, "_docmill", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler._docmill = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.propagate = False
