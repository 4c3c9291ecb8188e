"""
Turning bytes of unknown encoding into text.

The order is the cheap one first: a byte-order mark, then a strict UTF-8
decode, then a NUL-pattern check for UTF-16/32 without a mark, and only when
all of these fail charset-normalizer on a bounded sample. Most text is UTF-8,
so most text never pays for detection.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

# Detection reads at most this much; the whole file is then decoded with the
# encoding found. 64 KiB is enough for the detector to settle on every
# non-UTF-8 file in the shared corpus.
DETECTION_SAMPLE_BYTES = 64 * 1024

_BOMS = (
    # UTF-32 first: its little-endian mark begins with UTF-16's.
    (codecs.BOM_UTF32_LE, "utf-32-le", "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "utf-32"),
    (codecs.BOM_UTF8, "utf-8", "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16"),
)


@dataclass(frozen=True)
class DecodedText:
    text: str
    encoding: str
    bom: str | None = None
    confident: bool = True


def detect_bom(data: bytes) -> tuple[str, str] | None:
    """Return ``(bom name, codec)`` when ``data`` opens with a byte-order mark."""
    for mark, name, codec in _BOMS:
        if data.startswith(mark):
            return name, codec
    return None


def _utf16_32_without_bom(sample: bytes) -> str | None:
    # Text in UTF-16/32 without a mark shows as a regular pattern of NUL bytes;
    # no single-byte or UTF-8 text contains NULs, so the pattern is decisive.
    if len(sample) < 4 or b"\x00" not in sample:
        return None
    sample = sample[: len(sample) - len(sample) % 4]
    quads = [sample[i : i + 4] for i in range(0, len(sample), 4)]
    if all(q[1:4] == b"\x00\x00\x00" or q[0:3] == b"\x00\x00\x00" for q in quads):
        if all(q[0:2] == b"\x00\x00" for q in quads):
            return "utf-32-be"
        if all(q[2:4] == b"\x00\x00" for q in quads):
            return "utf-32-le"
    even_nuls = sample[0::2].count(0)
    odd_nuls = sample[1::2].count(0)
    half = len(sample) // 2
    if odd_nuls > 0.4 * half and even_nuls < 0.05 * half:
        return "utf-16-le"
    if even_nuls > 0.4 * half and odd_nuls < 0.05 * half:
        return "utf-16-be"
    return None


def decode(data: bytes, declared: str | None = None) -> DecodedText:
    """
    Decode ``data`` to text, detecting its encoding.

    Args:
        data: the raw bytes.
        declared: an encoding the document itself names (an XML declaration,
            an HTML meta tag). It is tried after a BOM and UTF-8 and kept only
            if it decodes the bytes strictly, since declarations lie.

    Raises:
        UnicodeDecodeError: never; undecodable bytes become U+FFFD only when
            no candidate decodes strictly, and ``confident`` is then False.
    """
    bom = detect_bom(data)
    if bom is not None:
        name, codec = bom
        return DecodedText(data.decode(codec, errors="replace"), name, bom=name)
    try:
        return DecodedText(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        pass
    wide = _utf16_32_without_bom(data[:DETECTION_SAMPLE_BYTES])
    if wide is not None:
        return DecodedText(data.decode(wide, errors="replace"), wide)
    if declared:
        codec = _codec_name(declared)
        if codec and codec not in ("utf-8", "utf_8"):
            try:
                return DecodedText(data.decode(codec), codec)
            except (UnicodeDecodeError, LookupError):
                pass
    return _detect(data)


def _codec_name(label: str) -> str | None:
    try:
        return codecs.lookup(label.strip().strip("\"'")).name
    except LookupError:
        return None


def _detect(data: bytes) -> DecodedText:
    from charset_normalizer import from_bytes

    sample = data[:DETECTION_SAMPLE_BYTES]
    # A sample cut mid-character must not make the right codec look wrong;
    # give the detector whole characters by trimming a few trailing bytes.
    best = from_bytes(sample if len(data) <= len(sample) else sample[:-4]).best()
    if best is not None:
        encoding = best.encoding
        try:
            return DecodedText(data.decode(encoding), encoding)
        except (UnicodeDecodeError, LookupError):
            return DecodedText(
                data.decode(encoding, errors="replace"), encoding, confident=False
            )
    return DecodedText(data.decode("utf-8", errors="replace"), "utf-8", confident=False)


def looks_like_text(data: bytes) -> bool:
    """
    Whether a sample of bytes is plausibly text in some encoding.

    Used by the sniffer to tell text from unknown binary formats: control
    bytes other than whitespace are rare in any real text encoding.
    """
    if not data:
        return False
    if detect_bom(data) or _utf16_32_without_bom(data[:4096]):
        return True
    sample = data[:4096]
    try:
        sample.decode("utf-8")
        return b"\x00" not in sample
    except UnicodeDecodeError as exc:
        # A sample cut inside a multi-byte character is still UTF-8.
        if exc.start >= len(sample) - 3 and exc.reason == "unexpected end of data":
            return b"\x00" not in sample
    if b"\x00" in sample:
        return False
    controls = sum(1 for b in sample if b < 0x20 and b not in b"\t\n\r\x0c\x1b")
    if controls > len(sample) * 0.01:
        return False
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    return best is not None and best.chaos < 0.3
