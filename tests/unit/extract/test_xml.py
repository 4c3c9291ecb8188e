from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from docmill.exceptions import LimitExceeded
from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult
from docmill.extract.xml import (
    SPACES_BUT_SPACE,
    _collect,
    _leaf_lines,
    _parser,
    _text_lines,
    extract_xml,
)

CATALOG = b"""<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment -->
<CATALOG>
  <CD id="1"><TITLE>Empire Burlesque</TITLE><ARTIST>Bob Dylan</ARTIST></CD>
  <NOTE>Mixed <b>bold</b> text</NOTE>
</CATALOG>
"""
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>
"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE root [<!ENTITY ee SYSTEM "http://127.0.0.1:9/never-fetched.xml">]>
<root>&ee;</root>
"""


def _extract(data: bytes) -> ExtractionResult:
    ctx = ExtractContext()
    ctx.media_type = mime.XML
    return extract_xml(data, ctx)


def test_text_is_one_line_per_element_value() -> None:
    assert _extract(CATALOG).text == ("Empire Burlesque\nBob Dylan\nMixed bold text")


def test_metadata_names_the_root_element() -> None:
    assert _extract(CATALOG).metadata == {"encoding": "utf-8", "root": "CATALOG"}


def test_entities_are_never_expanded_and_stay_as_references() -> None:
    result = _extract(BILLION_LAUGHS)
    assert (result.text, result.warnings) == (
        "&lol3;",
        ["1 entity references left unexpanded"],
    )


def test_external_entities_are_never_fetched() -> None:
    assert _extract(EXTERNAL).text == "&ee;"


def test_a_quadratic_blowup_stops_at_the_amplification_limit() -> None:
    body = b"&a;" * 20_000
    data = b'<!DOCTYPE b [<!ENTITY a "' + b"B" * 50_000 + b'">]><b>' + body + b"</b>"
    with pytest.raises(LimitExceeded):
        _extract(data)


@pytest.mark.parametrize(
    "levels", [pytest.param(257, id="past-the-limit"), pytest.param(300_000, id="deep")]
)
def test_elements_nested_too_deeply_are_a_limit(levels: int) -> None:
    data = b"<a>" * levels + b"x" + b"</a>" * levels

    with pytest.raises(LimitExceeded) as caught:
        _extract(data)

    assert caught.value.message == (
        "the XML nests its elements too deeply to read (deeper than 256 "
        "levels); nothing was read"
    )


def test_elements_nested_to_the_limit_are_read() -> None:
    data = b"<a>" * 256 + b"x" + b"</a>" * 256

    assert _extract(data).text == "x"


def test_utf16_that_declares_utf8_reads() -> None:
    data = '<?xml version="1.0" encoding="UTF-8"?><c>Washington, DC</c>'
    assert _extract(data.encode("utf-16")).text == "Washington, DC"


def test_a_declared_legacy_encoding_is_used() -> None:
    data = '<?xml version="1.0" encoding="ISO-8859-1"?><p>Déjà vu</p>'
    assert _extract(data.encode("latin-1")).text == "Déjà vu"


def test_an_xhtml_root_goes_to_the_html_extractor() -> None:
    data = b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>T</title></head><body><p>Hi</p></body></html>'
    result = _extract(data)
    assert (result.mime_type, result.text, result.metadata["title"]) == (
        mime.HTML,
        "Hi",
        "T",
    )


def test_xml_that_is_not_well_formed_is_read_as_text() -> None:
    result = _extract(b"<a><b>unclosed</a>")
    assert (result.mime_type, result.text) == (mime.TEXT, "<a><b>unclosed</a>")


_TEXT = st.text(alphabet=" \n\ta\u00e9\u00a0\u2003<&", max_size=4)
Node = tuple[str, str, list[Any], str]
_ELEMENT: st.SearchStrategy[Node] = st.recursive(
    st.tuples(st.sampled_from("abc"), _TEXT, st.just([]), _TEXT),
    lambda children: st.tuples(
        st.sampled_from("abc"), _TEXT, st.lists(children, max_size=3), _TEXT
    ),
    max_leaves=12,
)


def _build(node: Node) -> Any:
    tag, text, children, tail = node
    element = etree.Element(tag)
    element.text = text or None
    element.tail = tail or None
    element.extend(_build(child) for child in children)
    return element


@settings(max_examples=400, deadline=None)
@given(node=_ELEMENT)
def test_the_xpath_lines_are_the_walked_ones(node: Node) -> None:
    # Serialised and parsed again, as extraction parses: adjacent text and
    # whitespace are then what a real document gives. A wrapper keeps the
    # generated tail inside the document.
    wrapper = etree.Element("r")
    wrapper.append(_build(node))
    root = etree.fromstring(etree.tostring(wrapper), _parser())
    walked: list[str] = []
    _collect(root, walked)
    found = _text_lines(root)
    if found is not None:
        assert found == walked


def test_space_that_only_python_calls_space_takes_the_walk() -> None:
    root = etree.fromstring("<a>\u00a0<b>x</b> <c>y</c></a>".encode(), _parser())
    assert _text_lines(root) is None
    walked: list[str] = []
    _collect(root, walked)
    assert walked == ["x", "y"]


_LEAF_TEXT = st.text(alphabet=" \n\ta|\u00e9\u00a0\u2003\u3000\x85<&", max_size=5)
_LEAFY: st.SearchStrategy[Node] = st.recursive(
    st.tuples(st.sampled_from("abc"), _LEAF_TEXT, st.just([]), _TEXT),
    lambda children: st.tuples(
        st.sampled_from("abc"), _LEAF_TEXT, st.lists(children, max_size=3), _TEXT
    ),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(node=_LEAFY)
def test_the_leaf_lines_are_the_walked_ones(node: Node) -> None:
    wrapper = etree.Element("r")
    wrapper.append(_build(node))
    root = etree.fromstring(etree.tostring(wrapper), _parser())
    walked: list[str] = []
    _collect(root, walked)
    found = _leaf_lines(root)
    if found:
        assert found == walked


@pytest.mark.parametrize(
    ("document", "lines"),
    [
        pytest.param("<r><a>x y</a><b> p  q </b></r>", ["x y", "p q"], id="folded"),
        pytest.param("<r><a>x  y</a></r>", ["x y"], id="two-spaces"),
        pytest.param("<r><a>x\ty</a></r>", ["x y"], id="tab"),
        pytest.param("<r><a>x<?pi y?>z</a></r>", ["xz"], id="processing-instruction"),
        pytest.param("<r><a>x|y</a><b>z</b></r>", ["x|y", "z"], id="mark-in-text"),
        pytest.param("<r><a>x<!-- c -->y</a></r>", ["xy"], id="comment"),
        pytest.param("<r><a>x<![CDATA[ <y> ]]>z</a></r>", ["x <y> z"], id="cdata"),
        pytest.param("<r><a>x\u3000y</a></r>", ["x y"], id="wide-space"),
    ],
)
def test_leaf_lines_read_leaves(document: str, lines: list[str]) -> None:
    root = etree.fromstring(document.encode(), _parser())
    assert _leaf_lines(root) == lines


@pytest.mark.parametrize(
    "document",
    [
        pytest.param("<r>x<a>y</a></r>", id="mixed"),
        pytest.param("<r><a> </a></r>", id="no-text"),
    ],
)
def test_leaf_lines_leave_the_rest_to_the_xpath_lines(document: str) -> None:
    assert not _leaf_lines(etree.fromstring(document.encode(), _parser()))


def test_the_spaces_are_those_python_splits_at() -> None:
    spaces = [chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()]
    assert sorted(SPACES_BUT_SPACE) == [space for space in spaces if space != " "]
