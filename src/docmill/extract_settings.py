"""
The settings ``docmill extract`` reads, importable without pydantic.

``Settings`` stays the one place that reads and validates configuration, and
it takes the defaults of these fields from here. Importing pydantic-settings
costs a one-file ``docmill extract`` more than all its other work, and when the
environment holds no ``DOCMILL_`` variable and no flag is given there is
nothing for it to read: the defaults are the answer. Anything else goes
through ``Settings``, with its validation and its error messages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from docmill.extract.base import Limits

JOB_TIMEOUT_SECONDS = 120.0
JOB_MEMORY_MB = 2048


@dataclass(frozen=True)
class ExtractSettings:
    """What one extraction run needs from the configuration."""

    limits: Limits = field(default_factory=Limits)
    job_timeout_seconds: float = JOB_TIMEOUT_SECONDS
    job_memory_mb: int = JOB_MEMORY_MB
    extractor_plugins: list[str] = field(default_factory=list)


def load_extract_settings(**flags: Any) -> ExtractSettings:
    """
    The environment's extraction settings, with the flags given on top.

    ``None`` stands for a flag the user did not give.
    """
    given = {name: value for name, value in flags.items() if value is not None}
    if not given and not environment_configures_docmill():
        return ExtractSettings()
    from docmill.settings import extraction_settings

    return extraction_settings(**given)


def environment_configures_docmill() -> bool:
    """Whether any variable could be a setting, as pydantic-settings matches them."""
    # Settings matches names case-insensitively. Any DOCMILL_ variable counts,
    # even one that names no field: simpler than matching field names, and
    # an unrelated setting, invalid or not, changes nothing there.
    return any(name.upper().startswith("DOCMILL_") for name in os.environ)
