"""
docmill: a self-hosted document processing service.

The Python surface is small: the settings object, the extraction entry point
used by the workers and by ``docmill extract``, and the error tree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from docmill.exceptions import DocmillError, ExtractionError

if TYPE_CHECKING:
    from docmill.settings import Settings

__version__ = "0.1.0"

__all__ = ["DocmillError", "ExtractionError", "Settings", "__version__"]


def __getattr__(name: str) -> Any:
    # Every `docmill.*` import runs this module first; importing Settings (and
    # with it pydantic-settings) only on use keeps `docmill extract` quick.
    if name == "Settings":
        from docmill.settings import Settings

        return Settings
    raise AttributeError(f"module 'docmill' has no attribute {name!r}")
