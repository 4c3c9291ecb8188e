"""
JSON: every value on a line of its own, after the path that leads to it.

``{"a": {"b": ["x", 2]}}`` reads as ``a.b[0]: x`` and ``a.b[1]: 2``, so a
search finds keys and values together. ``null`` and empty containers carry no
text and are left out. ``metadata["json_keys"]`` counts the top-level keys
of an object.

The sniffer sends only complete, valid JSON here, but it judges a large file
by its head alone; a file that turns out not to parse is read as plain text
rather than failed. One nested deeper than ``json.loads`` goes (about a
thousand levels, Python's recursion limit) fails as ``limit_exceeded``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

from docmill.exceptions import LimitExceeded
from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult, Source, read_source
from docmill.extract.charsets import decode_declared
from docmill.extract.text import encoding_metadata, extract_text, text_warnings


def extract_json(source: Source, ctx: ExtractContext) -> ExtractionResult:
    data = read_source(source)
    decoded = decode_declared(data, ctx.charset)
    try:
        document = _parse(decoded.text)
    except RecursionError as exc:
        raise LimitExceeded(
            "the JSON nests its arrays and objects too deeply to read (deeper "
            f"than about {sys.getrecursionlimit()} levels); nothing was read"
        ) from exc
    except ValueError as exc:
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
        warnings=text_warnings(decoded, ctx.charset),
    )


# The text the sniffer last parsed whole, and what it parsed to. The
# sniffer parses a small file to tell JSON from text; the extractor then
# reads the same text, and parsing it again was a sixth of its time.
_sniffed: tuple[str, Any] | None = None


def remember_json(text: str, document: Any) -> None:
    """Keep the sniffer's parse of ``text`` for the extractor to take."""
    global _sniffed
    _sniffed = (text, document)


def _parse(text: str) -> Any:
    # Equal text parses to an equal document, so the kept one is used only
    # for exactly this text, and only once.
    global _sniffed
    kept, _sniffed = _sniffed, None
    if kept is not None and kept[0] == text:
        return kept[1]
    return json.loads(text)


def json_lines(document: Any) -> list[str]:
    """``path: value`` for every scalar in ``document``, in document order."""
    if not isinstance(document, dict | list):
        return [] if document is None else [_scalar(document)]
    lines: list[str] = []
    append = lines.append
    # An explicit stack of the open containers (prefix, items, keyed): a
    # deeply nested document must not exhaust Python's stack. The scalars of
    # a container are written in one tight loop, an object's or an array's,
    # that makes one f-string per value: a scalar's line is built whole
    # rather than from its path first (a tenth of the walk). Only a nested
    # container interrupts the loop, and its parent resumes where it
    # stopped. The prefix is the container's path as its children extend it
    # ("a." for an object, "a" for an array). Exact types are tested first:
    # json.loads makes nothing else, and an isinstance of a union costs
    # more; an f-string writes an int or a float as str() does.
    stack = [_open("", document)]
    while stack:
        prefix, items, keyed = stack[-1]
        if keyed:
            for key, value in items:
                kind = type(value)
                if kind is str or kind is int or kind is float:
                    # Only the empty key of a top-level object has no path.
                    append(f"{prefix}{key}: {value}" if prefix or key else f"{value}")
                elif kind is dict or kind is list or isinstance(value, dict | list):
                    stack.append(_open(f"{prefix}{key}", value))
                    break
                elif value is not None:
                    here = f"{prefix}{key}"
                    append(f"{here}: {_scalar(value)}" if here else _scalar(value))
            else:
                stack.pop()
        else:
            for index, value in items:
                kind = type(value)
                if kind is str or kind is int or kind is float:
                    append(f"{prefix}[{index}]: {value}")
                elif kind is dict or kind is list or isinstance(value, dict | list):
                    stack.append(_open(f"{prefix}[{index}]", value))
                    break
                elif value is not None:
                    append(f"{prefix}[{index}]: {_scalar(value)}")
            else:
                stack.pop()
    return lines


def _open(
    path: str, container: dict[str, Any] | list[Any]
) -> tuple[str, Iterator[tuple[Any, Any]], bool]:
    if isinstance(container, dict):
        return f"{path}." if path else "", iter(container.items()), True
    return path, enumerate(container), False


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
