"""
RTF: the text with control words stripped.

striprtf does the stripping. It decodes ``\\'hh`` escapes with the code page
of the current font's ``\\fcharset`` or, failing that, the document's
``\\ansicpgN`` (so cp1250 and Shift-JIS documents read right), and turns
``\\uN`` into characters. Two gaps are closed here: raw 8-bit bytes outside
escapes are decoded with the document's code page before striprtf sees
them, and the UTF-16 surrogate pairs that ``\\uN`` writes for characters
beyond the BMP are joined into one character.
"""

from __future__ import annotations

import re
from typing import Any

from striprtf.striprtf import rtf_to_text

from docmill.exceptions import CorruptDocument
from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult, Source, read_source
from docmill.extract.text import normalize_newlines
from docmill.extract.textcodec import codec_name

_CODEPAGE = re.compile(rb"\\ansicpg(\d{1,5})")
_INFO_FIELD = re.compile(rb"\{\\(title|author|subject|keywords|company)\s([^{}]*)\}")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Code pages whose lead bytes can be followed by "\" or "{": raw bytes in them
# would split control words, so they are read byte for byte instead.
_DOUBLE_BYTE = frozenset({"cp932", "cp936", "cp949", "cp950", "cp1361", "gbk"})


def extract_rtf(source: Source, ctx: ExtractContext) -> ExtractionResult:
    data = read_source(source)
    match = _CODEPAGE.search(data[:4096])
    codepage = int(match.group(1)) if match else None
    codec = (codec_name(f"cp{codepage}") if codepage else None) or "cp1252"

    text = _strip(data, codec)
    metadata: dict[str, Any] = {}
    if codepage is not None:
        metadata["codepage"] = codepage
    for field, raw in _INFO_FIELD.findall(data[:65536]):
        value = _strip(b"{\\rtf1 " + raw + b"}", codec).strip()
        if value:
            metadata.setdefault(field.decode("ascii"), value)
    return ExtractionResult(mime.RTF, text, metadata=metadata)


def _strip(data: bytes, codec: str) -> str:
    if data.isascii() or codec in _DOUBLE_BYTE:
        rtf = data.decode("latin-1")
    else:
        rtf = data.decode(codec, errors="replace")
    try:
        # striprtf ships no type hints.
        text = rtf_to_text(rtf, encoding=codec, errors="replace")  # type: ignore[no-untyped-call]
    except (ValueError, LookupError, IndexError) as exc:
        # striprtf reads control words' numbers with int() and looks up the
        # codecs documents name; a damaged document fails there.
        raise CorruptDocument(f"the RTF could not be read: {exc}") from exc
    if _SURROGATE.search(text):
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return normalize_newlines(text)
