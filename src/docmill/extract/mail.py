"""
E-mail (RFC 5322, ``.eml``): headers, body and attachments.

The text opens with the From, To, Cc, Date and Subject headers (RFC 2047
words decoded), then a blank line, then the body: every text part that is
not an attachment, taking the plain version of a multipart/alternative and
the HTML one, converted to text, only when there is no plain version. Parts
with a file name are attachments: each is extracted as a child document and
counted in ``metadata["attachments"]``; an attached message without a name
is a child too, named after its subject.
"""

from __future__ import annotations

from email import policy
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from docmill.exceptions import EmptyDocument
from docmill.extract import mime
from docmill.extract.base import (
    ChildResult,
    ExtractContext,
    ExtractionResult,
    Source,
    read_source,
)
from docmill.extract.text import normalize_newlines
from docmill.extract.textcodec import decode

_HEADERS = ("from", "to", "cc", "date", "subject")


def extract_email(source: Source, ctx: ExtractContext) -> ExtractionResult:
    data = read_source(source)
    # compat32 keeps headers as the strings they arrived as; policy.default
    # builds a parsed header object for every header the parser or this
    # module touches, which was most of the time spent on a small message.
    # Encoded words are decoded here, only for the headers shown.
    message = BytesParser(policy=policy.compat32).parsebytes(data)
    if not message.keys() and not message.get_payload():
        raise EmptyDocument("the message has neither headers nor a body")

    metadata: dict[str, Any] = {}
    for name in _HEADERS:
        value = header(message, name)
        if value:
            metadata[name] = value
    if "date" in metadata:
        metadata["date"] = _normal_date(metadata["date"])
    reader = _PartReader(ctx)
    reader.read(message)
    metadata["attachments"] = len(reader.children)

    lines = [
        f"{name.title()}: {metadata[name]}" for name in _HEADERS if name in metadata
    ]
    parts = ["\n".join(lines), *reader.bodies]
    return ExtractionResult(
        mime.EMAIL,
        "\n\n".join(part for part in parts if part),
        metadata=metadata,
        children=reader.children,
        warnings=reader.warnings,
    )


def header(message: Message, name: str) -> str | None:
    """A header's decoded value with folding removed, or None if absent."""
    raw = next(
        (value for key, value in message.raw_items() if key.lower() == name), None
    )
    if raw is None:
        return None
    return " ".join(decode_words(_unescape_8bit(raw)).split()) or None


def _normal_date(value: str) -> str:
    # One spelling for every parseable date ("Thu, 04 Oct 2012 13:02:39
    # +0200"), as policy.default's date header renders it; others as written.
    try:
        return format_datetime(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return value


def decode_words(value: str) -> str:
    """``value`` with its RFC 2047 encoded words decoded."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        # A broken encoded word: the text as it stands beats nothing.
        return value


def _unescape_8bit(value: str) -> str:
    # The parser keeps raw 8-bit header bytes (UTF-8 by RFC 6532, or some
    # legacy charset) as surrogate escapes; they become text as any text does.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return decode(value.encode("utf-8", "surrogateescape")).text
    return value


class _PartReader:
    """Walks a message's MIME tree, collecting body texts and attachments."""

    def __init__(self, ctx: ExtractContext) -> None:
        self.ctx = ctx
        self.bodies: list[str] = []
        self.children: list[ChildResult] = []
        self.warnings: list[str] = []

    def read(self, part: Message) -> None:
        filename = _filename(part)
        content_type = part.get_content_type()
        if filename:
            self._attach(filename, _payload(part))
        elif content_type == "message/rfc822":
            self._attach_message(part)
        elif part.is_multipart():
            if content_type == "multipart/alternative":
                preferred = _preferred_alternative(part)
                if preferred is not None:
                    self.read(preferred)
            else:
                for subpart in _subparts(part):
                    self.read(subpart)
        elif content_type in ("text/plain", "text/html"):
            self._body(part, html=content_type == "text/html")

    def _body(self, part: Message, html: bool) -> None:
        text = _decode_part(_payload(part), part.get_content_charset())
        if html:
            from docmill.extract.html import html_text

            text = html_text(text.encode("utf-8"))
        text = normalize_newlines(text).strip()
        if text:
            self.bodies.append(text)

    def _attach(self, name: str, payload: bytes) -> None:
        self.children.append(self.ctx.extract_child(name, payload))

    def _attach_message(self, part: Message) -> None:
        inner = part.get_payload()
        if isinstance(inner, list) and inner:
            inner = inner[0]
        if not isinstance(inner, Message):
            return
        subject = header(inner, "subject") or "attached message"
        self._attach(f"{subject}.eml", inner.as_bytes())


def _filename(part: Message) -> str | None:
    # get_filename parses both headers' parameters, a third of the time spent
    # on a small message; a file name is a parameter whose name holds "name"
    # (filename, name, or their RFC 2231 forms), so without those letters in
    # either header there is none.
    headers = (part.get("content-disposition"), part.get("content-type"))
    if not any(header and "name" in str(header).lower() for header in headers):
        return None
    filename = part.get_filename()
    return decode_words(_unescape_8bit(filename)) if filename else filename


def _preferred_alternative(part: Message) -> Message | None:
    alternatives = _subparts(part)
    types = [alternative.get_content_type() for alternative in alternatives]
    for wanted in ("text/plain", "text/html"):
        if wanted in types:
            return alternatives[types.index(wanted)]
    # A multipart alternative (plain and related HTML, say): the last one is
    # the richest by RFC 2046's ordering.
    return alternatives[-1] if alternatives else None


def _payload(part: Message) -> bytes:
    # Transfer encoding undone; a multipart or malformed part gives None.
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _subparts(part: Message) -> list[Message]:
    payload = part.get_payload()
    return (
        [sub for sub in payload if isinstance(sub, Message)]
        if isinstance(payload, list)
        else []
    )


def _decode_part(payload: bytes, charset: str | None) -> str:
    if charset:
        try:
            return payload.decode(charset)
        except (UnicodeDecodeError, LookupError):
            # A wrong or unknown charset label: detect as for any text.
            pass
    return decode(payload).text
