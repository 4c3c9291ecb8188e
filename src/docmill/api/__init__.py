"""The REST API."""

from __future__ import annotations

from docmill.api.app import create_app

__all__ = ["create_app"]
