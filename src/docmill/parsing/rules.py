"""
The rules schema: what a parser file says, validated before it is stored.

A parser is a name and a mapping of field names to rules. Each rule says
where the value is (``rule``: regex, after_label, between, table, constant,
metadata) and what it is (``type`` and ``required``)::

    name: acme-invoices
    fields:
      invoice_number: {rule: after_label, label: Invoice No, required: true}
      total: {rule: after_label, label: Total, type: decimal, occurrence: last}

Validation errors carry the rule's path (``fields.total.type``), so the API
can answer 422 naming the exact place to fix.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

import regex  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from docmill.parsing.errors import InvalidRules

FieldType = Literal["string", "integer", "decimal", "date", "email", "iban"]
DateOrder = Literal["DMY", "MDY", "YMD"]
RULE_KINDS = ("regex", "after_label", "between", "table", "constant", "metadata")

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
FIELD_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"
_FIELD_NAME = re.compile(FIELD_NAME_PATTERN)
_PAGES = re.compile(r"^\s*(-?\d+)?\s*(?:(-|\.\.)\s*(-?\d+)?)?\s*$")


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: FieldType = Field("string", description="How the value is normalised.")
    required: bool = Field(False, description="Report the field when it is absent.")
    decimal_separator: Literal["auto", ".", ","] = Field(
        "auto",
        description="For decimals: which mark separates the fraction; auto "
        "decides from the value (1.234,50 and 1,234.50 both read as 1234.50).",
    )
    date_order: DateOrder = Field(
        "DMY", description="For dates whose order the value does not settle."
    )


class _TextRule(_Rule):
    pages: str | int | None = Field(
        None,
        description="Page range to search: 2, '1-3', '2-', 'last' or -1 "
        "(counted from the end). Default: the whole text.",
    )
    occurrence: Literal["first", "last"] = "first"

    @field_validator("pages")
    @classmethod
    def _check_pages(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            page_bounds(value)
        return value


class RegexRule(_TextRule):
    """A regular expression; the value is its named group."""

    rule: Literal["regex"]
    pattern: str
    group: str = "value"
    ignore_case: bool = True

    @field_validator("pattern")
    @classmethod
    def _compile(cls, value: str) -> str:
        try:
            regex.compile(value)
        except regex.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    def model_post_init(self, __context: Any) -> None:
        groups = regex.compile(self.pattern).groupindex
        if self.group not in groups:
            raise ValueError(
                f"the pattern has no group named {self.group!r}; "
                f"write (?P<{self.group}>...)"
            )


class AfterLabelRule(_TextRule):
    """The value after a label on the same line, or on the next one."""

    rule: Literal["after_label"]
    label: str | list[str] = Field(
        description="The label, or several spellings; case, spacing and a "
        "trailing colon do not matter."
    )
    value_pattern: str | None = Field(
        None, description="Keep only the first match of this pattern."
    )

    @field_validator("value_pattern")
    @classmethod
    def _compile(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                regex.compile(value)
            except regex.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @property
    def labels(self) -> list[str]:
        return [self.label] if isinstance(self.label, str) else self.label


class BetweenRule(_TextRule):
    """The text between two anchors (case- and spacing-tolerant)."""

    rule: Literal["between"]
    start: str = Field(min_length=1)
    end: str = Field(min_length=1)


class TableColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    header: str = Field(min_length=1, description="The header text to find.")
    name: str | None = Field(
        None, description="Key in each row; default: the header, normalised."
    )
    type: FieldType = "string"


class TableRule(_Rule):
    """Rows of the table whose header holds these columns, in this order."""

    rule: Literal["table"]
    columns: list[str | TableColumn] = Field(min_length=1)
    stop_at: list[str] = Field(
        default_factory=list,
        description="A row whose first cell starts with one of these ends the table.",
    )
    pages: str | int | None = None

    @field_validator("pages")
    @classmethod
    def _check_pages(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            page_bounds(value)
        return value

    @property
    def resolved_columns(self) -> list[TableColumn]:
        columns = [
            TableColumn(header=c) if isinstance(c, str) else c for c in self.columns
        ]
        return [
            c.model_copy(update={"name": c.name or column_key(c.header)})
            for c in columns
        ]


class ConstantRule(_Rule):
    """A fixed value, such as the supplier a parser is written for."""

    rule: Literal["constant"]
    value: str | int | float | bool


class MetadataRule(_Rule):
    """
    A fact about the document rather than its text.

    ``key`` is ``filename``, ``title``, ``page_count`` or ``mime_type``;
    ``metadata.NAME`` for the document's own properties (author, created);
    ``user.NAME`` for the metadata the document was submitted with.
    """

    rule: Literal["metadata"]
    key: str = Field(
        pattern=r"^(filename|title|page_count|mime_type|(metadata|user)\..+)$"
    )


FieldRule = Annotated[
    RegexRule | AfterLabelRule | BetweenRule | TableRule | ConstantRule | MetadataRule,
    Field(discriminator="rule"),
]


class ParserSpec(BaseModel):
    """A named set of rules, as written in a parser file or sent to the API."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    # The names are checked below, for a message that names the field; the
    # schema says the same, so a client built from it never sends one the
    # API refuses (an empty name was valid there and a 422 here).
    fields: dict[str, FieldRule] = Field(
        min_length=1,
        json_schema_extra={"propertyNames": {"pattern": FIELD_NAME_PATTERN}},
    )

    @field_validator("fields")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            # fullmatch: `$` alone would let a name end in a newline.
            if not _FIELD_NAME.fullmatch(name):
                raise ValueError(
                    f"field name {name!r} must be letters, digits and underscores"
                )
        return value


def column_key(header: str) -> str:
    """``Unit Price (EUR)`` becomes ``unit_price_eur``."""
    return re.sub(r"[^0-9a-z]+", "_", header.casefold()).strip("_") or "column"


def page_bounds(pages: str | int) -> tuple[int | None, int | None]:
    """
    A page range as 1-based inclusive bounds; negative counts from the end.

    Raises:
        ValueError: the range is not one of the accepted spellings.
    """
    if isinstance(pages, int):
        if pages == 0:
            raise ValueError("pages are numbered from 1 (or -1 for the last)")
        return pages, pages
    if pages.strip().casefold() == "last":
        return -1, -1
    match = _PAGES.match(pages)
    if not match or not (match[1] or match[3]) or "0" in (match[1], match[3]):
        raise ValueError(f"not a page range: {pages!r}; write 2, '1-3', '2-' or 'last'")
    start = int(match[1]) if match[1] else None
    if not match[2]:
        return start, start
    return start, int(match[3]) if match[3] else None


def validate_spec(data: Any) -> ParserSpec:
    """
    Validate a parsed rules document.

    Raises:
        InvalidRules: with one ``{path, message}`` per problem.
    """
    try:
        return ParserSpec.model_validate(data)
    except ValidationError as exc:
        raise InvalidRules(validation_errors(exc)) from exc


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        loc = list(error["loc"])
        # The discriminated union inserts the rule kind after the field name
        # (fields.total.regex.pattern); users wrote no such level.
        if len(loc) >= 3 and loc[0] == "fields" and loc[2] in RULE_KINDS:
            del loc[2]
        # A union of str and model reports each branch; name the model one.
        loc = [part for part in loc if part not in ("str", "TableColumn")]
        message = error["msg"].removeprefix("Value error, ")
        errors.append({"path": ".".join(str(part) for part in loc), "message": message})
    return errors


def load_spec(text: str, filename: str = "") -> ParserSpec:
    """
    Read a parser file: JSON, or YAML (anything not ending in ``.json``).

    Raises:
        InvalidRules: the file does not parse, or its rules are invalid.
    """
    try:
        if filename.endswith(".json"):
            data = json.loads(text)
        else:
            import yaml  # type: ignore[import-untyped]

            data = yaml.safe_load(text)
    except Exception as exc:
        raise InvalidRules([{"path": "", "message": f"not readable: {exc}"}]) from exc
    return validate_spec(data)
