"""
The errors of parsing rules, a branch of docmill's error tree::

    DocmillError
    └── ParsingError
        ├── InvalidRules        a rules document failed validation (has .errors)
        ├── ParserExists        a create found the name taken
        └── ParserNotFound      no parser has this name (or version)

A rule that matches nothing, or a value that fails its type, is not an
error here: it is reported per field in ``fields_errors``.
"""

from __future__ import annotations

from typing import Any

from docmill.exceptions import DocmillError, shown


class ParsingError(DocmillError):
    """Parsing rules could not be stored or run."""


class InvalidRules(ParsingError):
    """The rules document is not valid."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        first = errors[0] if errors else {"path": "", "message": "invalid"}
        super().__init__(
            f"invalid rules at {first['path'] or '(top)'}: {first['message']}"
        )


class ParserExists(ParsingError):
    """A parser of this name exists already (for the caller)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"parser {name!r} exists")


class ParserNotFound(ParsingError):
    """No parser has this name."""

    def __init__(self, name: str, version: int | None = None) -> None:
        self.name = name
        self.version = version
        which = shown(name) + (f" version {version}" if version is not None else "")
        super().__init__(f"no parser named {which}")
