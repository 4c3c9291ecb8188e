from __future__ import annotations

from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult
from docmill.extract.jsondoc import extract_json


def _extract(data: bytes) -> ExtractionResult:
    ctx = ExtractContext()
    ctx.media_type = mime.JSON
    return extract_json(data, ctx)


def test_every_value_is_a_line_after_its_path() -> None:
    data = (
        b'{"title": "Complex Document", "tags": ["a", "b"],'
        b' "meta": {"n": 2, "ok": true, "none": null}}'
    )
    assert _extract(data).text == (
        "title: Complex Document\ntags[0]: a\ntags[1]: b\nmeta.n: 2\nmeta.ok: true"
    )


def test_top_level_keys_are_counted() -> None:
    assert _extract(b'{"a": 1, "b": {"c": 2}}').metadata["json_keys"] == 2


def test_a_top_level_array_has_no_key_count() -> None:
    result = _extract(b'["x", "y"]')
    assert (result.text, "json_keys" in result.metadata) == ("[0]: x\n[1]: y", False)


def test_a_bare_scalar_is_its_own_text() -> None:
    assert _extract(b'"just a string"').text == "just a string"


def test_invalid_json_is_read_as_plain_text() -> None:
    result = _extract(b'{"name": "John Doe",')
    assert (result.mime_type, result.text) == (mime.TEXT, '{"name": "John Doe",')


def test_deep_nesting_does_not_exhaust_the_stack() -> None:
    data = b"[" * 100_000 + b"]" * 100_000
    assert _extract(data).mime_type == mime.TEXT
