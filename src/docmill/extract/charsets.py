"""
A charset declared from outside the document: the ``charset`` parameter of an
upload's ``Content-Type``, or ``docmill extract --charset``.

Such a declaration ranks below a byte-order mark and above everything else:
the bytes' own mark, then the declaration if the bytes decode strictly with
it, then ``textcodec.decode`` (strict UTF-8, an in-document declaration such
as an HTML meta charset or an XML prolog, detection). This is the order of
the HTML standard and of RFC 7303 for XML, where the transport's charset
overrules the document's own. A declaration is a deliberate act (no common
client adds a charset to a file part by itself), so it also outranks a
strict UTF-8 decode: bytes of legacy text almost never decode as UTF-8, and
when they do, the sender knew better. The strict check is what catches a
wrong declaration of UTF-8 or of a multi-byte code page; a single-byte code
page decodes nearly any bytes, so a wrong one of those is obeyed.
"""

from __future__ import annotations

import codecs
import re

from docmill.exceptions import UnknownCharset, shown
from docmill.extract.textcodec import DecodedText, codec_name, decode, detect_bom

# RFC 2978's limit for a registered charset name. Python folds runs of
# punctuation in a name ("windows----1253" is cp1253), so a longer label
# could still name a codec; it is refused instead of stored.
MAX_LABEL_CHARS = 40

# C0 controls but tab, line feed, form feed and carriage return, and DEL.
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f]")

# Codecs that Python counts as text encodings but that are not a charset a
# file is written in: escapes of Python literals, the IDNA and Punycode
# transforms of host names, and one that refuses all bytes.
_NOT_CHARSETS = frozenset(
    {"undefined", "idna", "punycode", "unicode_escape", "raw_unicode_escape"}
)


def declared_codec(label: str) -> str:
    """
    Python's codec for a declared charset label (``windows-1253`` gives
    ``cp1253``).

    Raises:
        UnknownCharset: Python knows no codec by that name, or only one that
            does not turn bytes into text (``base64``, ``rot13``, ``idna``),
            or the label is longer than ``MAX_LABEL_CHARS`` or holds a
            character that no charset name has.
    """
    stripped = label.strip()
    # A name is printable ASCII (RFC 2978); a NUL also made ``codecs.lookup``
    # raise ValueError, which an upload's part header turned into a 500.
    if (
        len(stripped) > MAX_LABEL_CHARS
        or not stripped.isascii()
        or not stripped.isprintable()
    ):
        raise UnknownCharset(label)
    name = codec_name(label)
    if name is None or name in _NOT_CHARSETS:
        raise UnknownCharset(label)
    # A bytes-to-bytes codec (base64, zlib) or str-to-str one (rot13).
    if not codecs.lookup(name)._is_text_encoding:
        raise UnknownCharset(label)
    return name


def decode_declared(
    data: bytes, charset: str | None, in_document: str | None = None
) -> DecodedText:
    """
    Decode ``data``: its byte-order mark, then ``charset`` if the bytes decode
    strictly with it, then ``textcodec.decode`` with the document's own
    declaration ``in_document``.
    """
    if charset and detect_bom(data) is None:
        codec = codec_name(charset)
        if (
            codec is not None
            and codec not in _NOT_CHARSETS
            and (not _declares_ascii(charset) or data.isascii())
        ):
            try:
                return DecodedText(data.decode(codec), codec)
            except (UnicodeError, LookupError):
                pass
    return decode(data, declared=in_document)


def reads_as_declared(head: bytes, charset: str | None) -> bool:
    """
    Whether the first bytes of a document decode strictly in its declared
    ``charset`` to text: something besides whitespace, and no control
    character but whitespace.

    Sniffing tells text from binary without the declaration, and UTF-16
    without a byte-order mark passes its test only when mostly ASCII: Greek
    or Chinese declared ``utf-16le`` was refused as an unknown format. A
    binary file has control bytes, which any charset reads as controls.
    """
    if not charset:
        return False
    codec = codec_name(charset)
    if codec is None or codec in _NOT_CHARSETS:
        return False
    try:
        # Not final: the head may end inside a character.
        text = codecs.getincrementaldecoder(codec)().decode(head, final=False)
    except (UnicodeError, LookupError):
        return False
    return bool(text.strip()) and _CONTROL.search(text) is None


def _declares_ascii(label: str) -> bool:
    """
    Whether ``label`` names US-ASCII, which ``codec_name`` widens to cp1252
    as browsers do. Declared with an upload it is a claim that every byte is
    below 0x80, so a byte past it shows the claim wrong: UTF-8 text sent as
    ``us-ascii`` was read as cp1252 mojibake ("cafÃ©") instead of detected.
    """
    try:
        return codecs.lookup(label.strip().strip("\"'")).name == "ascii"
    except LookupError:
        return False


def unused_charset_warning(charset: str | None, decoded: DecodedText) -> list[str]:
    """
    A warning when the declared ``charset`` is not how ``data`` was read: its
    bytes carried a byte-order mark, or did not decode strictly with it.
    """
    codec = codec_name(charset) if charset else None
    if not charset or codec == decoded.encoding:
        return []
    if decoded.bom and codec and decoded.encoding.startswith(codec):
        # "utf-16" declared, and the mark told which byte order.
        return []
    reason = (
        f"the bytes open with a {decoded.bom} byte-order mark"
        if decoded.bom
        else "the bytes do not decode with it"
    )
    return [
        f"the declared charset {shown(charset)} was not used ({reason}); "
        f"read as {decoded.encoding}"
    ]
