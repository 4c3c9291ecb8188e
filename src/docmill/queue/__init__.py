"""The job queue: the documents table, claimed with leases and fenced by tokens."""

from __future__ import annotations
