"""
Extraction: from a document's bytes to its text, structure and metadata.

``extract_path`` and ``extract_bytes`` are the one entry point; they sniff the
format from the bytes, pick the extractor for it and finish the result
(counts, language). They run in extraction child processes, never on the
event loop.
"""

from __future__ import annotations

from docmill.extract.base import (
    ExtractContext,
    ExtractionResult,
    Extractor,
    Limits,
)
from docmill.extract.pipeline import extract_bytes, extract_path

__all__ = [
    "ExtractContext",
    "ExtractionResult",
    "Extractor",
    "Limits",
    "extract_bytes",
    "extract_path",
]
