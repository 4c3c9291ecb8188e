from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docmill.exceptions import LimitExceeded
from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult, Limits
from docmill.extract.child import extract_in_process
from docmill.extract.jsondoc import extract_json, json_lines
from docmill.extract.pipeline import extract_path


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


def test_nesting_past_the_parser_is_a_limit_exceeded() -> None:
    data = b"[" * 100_000 + b"]" * 100_000

    with pytest.raises(LimitExceeded, match="nests its arrays and objects too deeply"):
        _extract(data)


@pytest.mark.parametrize(
    "depth",
    [
        pytest.param(3_000, id="small-file-parsed-by-the-sniffer"),
        pytest.param(100_000, id="large-file-judged-by-its-head"),
    ],
)
def test_a_deeply_nested_file_fails_saying_so(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "deep.json"
    path.write_bytes(b'{"a":' * depth + b"1" + b"}" * depth)

    with pytest.raises(LimitExceeded) as caught:
        extract_in_process(path, "deep.json", Limits())

    assert (caught.value.code, str(caught.value)) == (
        "limit_exceeded",
        "the JSON nests its arrays and objects too deeply to read (deeper than "
        f"about {sys.getrecursionlimit()} levels); nothing was read",
    )


def test_nesting_within_the_parser_is_read() -> None:
    depth = 900
    data = b'{"a":' * depth + b"1" + b"}" * depth

    assert _extract(data).text == "a" + ".a" * (depth - 1) + ": 1"


def _reference_lines(value: object, path: str = "") -> list[str]:
    # The rule as stated in the module docstring, recursively.
    if isinstance(value, dict):
        return [
            line
            for key, item in value.items()
            for line in _reference_lines(item, f"{path}.{key}" if path else str(key))
        ]
    if isinstance(value, list):
        return [
            line
            for index, item in enumerate(value)
            for line in _reference_lines(item, f"{path}[{index}]")
        ]
    if value is None:
        return []
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return [f"{path}: {text}" if path else text]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(document=_JSON)
def test_lines_follow_the_document_in_order(document: object) -> None:
    assert json_lines(document) == _reference_lines(document)


def test_a_small_file_is_parsed_once_for_sniffing_and_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    loads = json.loads

    def counted(text: str) -> object:
        calls.append(text)
        return loads(text)

    # The sniffer and the extractor share the json module.
    monkeypatch.setattr(json, "loads", counted)
    path = tmp_path / "data.json"
    path.write_bytes(b'{"a": [1, 2]}')
    assert extract_path(path).text == "a[0]: 1\na[1]: 2"
    assert len(calls) == 1


def test_json_after_a_no_break_space_is_still_read_as_text(tmp_path: Path) -> None:
    # The sniffer strips Python's spaces before parsing, json.loads only
    # JSON's; the kept parse must not hide that from the extractor.
    path = tmp_path / "data.json"
    path.write_bytes('\u00a0{"a": 1}'.encode())
    result = extract_path(path)
    assert result.mime_type == mime.TEXT
    assert result.warnings[0].startswith("not valid JSON, read as plain text")


def test_a_lone_surrogate_escape_becomes_a_replacement_character(
    tmp_path: Path,
) -> None:
    """Every string of the result, metadata keys too, can be stored as UTF-8."""
    path = tmp_path / "sur.json"
    path.write_bytes(b'{"a":"\\ud800", "\\udfff":"\\ud83d\\ude00"}')

    result = extract_path(path)

    assert result.text == "a: \ufffd\n\ufffd: \U0001f600"
    assert result.warnings == [
        "2 lone surrogate code point(s) replaced with U+FFFD: they have no UTF-8 form"
    ]
    json.dumps(result.to_dict(), ensure_ascii=False).encode("utf-8")


def test_a_split_surrogate_pair_is_joined_in_metadata() -> None:
    from docmill.extract.pipeline import _replace_surrogates

    result = ExtractionResult(
        "text/plain", "ok", metadata={"title": "\ud83d\ude00", "n": [1, "\udc80"]}
    )

    _replace_surrogates(result)

    assert result.metadata == {"title": "\U0001f600", "n": [1, "\ufffd"]}
    assert len(result.warnings) == 1


@pytest.mark.parametrize("at", [0, 16 * 1024 - 1, 16 * 1024, 40_000])
def test_a_lone_surrogate_is_found_in_any_slice_of_a_long_text(at: int) -> None:
    from docmill.extract.pipeline import _holds_surrogate

    text = "é" * 40_001
    assert not _holds_surrogate(text)
    assert _holds_surrogate(text[:at] + "\udc80" + text[at:])
    # A character beyond the BMP is one code point in a str, not a pair.
    assert not _holds_surrogate(text[:at] + "\U0001f600" + text[at:])


def test_markdown_that_is_the_text_is_cleaned_and_counted_as_a_copy_would_be() -> None:
    from docmill.extract.pipeline import _replace_surrogates

    text = "a\ud800b"
    shared = ExtractionResult("text/markdown", text, markdown=text)
    copied = ExtractionResult("text/markdown", text, markdown="".join(["a\ud800", "b"]))

    _replace_surrogates(shared)
    _replace_surrogates(copied)

    assert shared.markdown == shared.text == "a\ufffdb"
    assert shared.warnings == copied.warnings
    assert shared.warnings[0].startswith("2 lone surrogate")


def test_a_text_given_with_its_utf8_bytes_is_kept() -> None:
    from docmill.extract.pipeline import _replace_surrogates

    text = "caf\u00e9 " * 10
    result = ExtractionResult("text/plain", text, utf8=(text, text.encode()))

    _replace_surrogates(result)

    assert result.text is text
    assert result.warnings == []
