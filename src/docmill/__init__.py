"""
docmill: a self-hosted document processing service.

The Python surface is small: the settings object, the extraction entry point
used by the workers and by ``docmill extract``, and the error tree.
"""

from __future__ import annotations

from docmill.exceptions import DocmillError, ExtractionError
from docmill.settings import Settings

__version__ = "0.1.0"

__all__ = ["DocmillError", "ExtractionError", "Settings", "__version__"]
