"""
JSON: every value on a line of its own, after the path that leads to it.

``{"a": {"b": ["x", 2]}}`` reads as ``a.b[0]: x`` and ``a.b[1]: 2``, so a
search finds keys and values together. ``null`` and empty containers carry no
text and are left out. ``metadata["json_keys"]`` counts the top-level keys
of an object.

The sniffer sends only complete, valid JSON here, but it judges a large file
by its head alone; a file that turns out not to parse is read as plain text
rather than failed.
"""

from __future__ import annotations

import json
from typing import Any

from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult, Source, read_source
from docmill.extract.text import encoding_metadata, extract_text, undecodable_warning
from docmill.extract.textcodec import decode


def extract_json(source: Source, ctx: ExtractContext) -> ExtractionResult:
    data = read_source(source)
    decoded = decode(data)
    try:
        document = json.loads(decoded.text)
    except (ValueError, RecursionError) as exc:
        # RecursionError: nesting deeper than the interpreter's stack allows.
        result = extract_text(data, ctx)
        result.warnings.append(f"not valid JSON, read as plain text: {exc}")
        return result

    metadata = encoding_metadata(decoded)
    if isinstance(document, dict):
        metadata["json_keys"] = len(document)
    return ExtractionResult(
        mime.JSON,
        "\n".join(json_lines(document)),
        metadata=metadata,
        warnings=undecodable_warning(decoded),
    )


def json_lines(document: Any) -> list[str]:
    """``path: value`` for every scalar in ``document``, in document order."""
    lines: list[str] = []
    # An explicit stack: a deeply nested document must not exhaust Python's.
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend(
                (f"{path}.{key}" if path else str(key), item)
                for key, item in reversed(value.items())
            )
        elif isinstance(value, list):
            stack.extend(
                (f"{path}[{index}]", item)
                for index, item in reversed(list(enumerate(value)))
            )
        elif value is not None:
            lines.append(f"{path}: {_scalar(value)}" if path else _scalar(value))
    return lines


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
