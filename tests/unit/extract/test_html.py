from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from docmill.exceptions import LimitExceeded
from docmill.extract import html
from docmill.extract.base import ExtractContext, ExtractionResult
from docmill.extract.html import (
    _estimated_depth,
    _Renderer,
    check_nesting,
    decode_html,
    extract_html,
    html_text,
)

PAGE = """<!DOCTYPE html>
<html><head>
<title>  Quarterly
 Report </title><title>Second</title>
<style>p { color: red }</style>
<script>var hidden = "script text";</script>
</head><body>
<noscript>enable scripts</noscript>
<template><p>template text</p></template>
<h1>Sales</h1>
<p>Revenue <b>grew</b> by <a href="https://example.com/q">ten percent</a>.</p>
<div hidden>hidden text</div>
<div style="display: none">invisible</div>
<ul><li>North</li><li>South<ol><li>Inner</li></ol></li></ul>
<table>
<tr><th>Region</th><th>Total</th></tr>
<tr><td>USA</td><td>$695</td></tr>
</table>
<p>line one<br>line two</p>
</body></html>
"""


def _extract(data: bytes) -> ExtractionResult:
    return extract_html(data, ExtractContext())


def test_text_is_the_visible_text_with_blocks_on_their_own_lines() -> None:
    assert _extract(PAGE.encode()).text == (
        "Sales\n"
        "Revenue grew by ten percent.\n"
        "North\n"
        "South\n"
        "Inner\n"
        "Region\tTotal\n"
        "USA\t$695\n"
        "line one\n"
        "line two"
    )


def test_markdown_keeps_headings_emphasis_links_lists_and_tables() -> None:
    assert _extract(PAGE.encode()).markdown == (
        "# Sales\n\n"
        "Revenue **grew** by [ten percent](https://example.com/q).\n\n"
        "- North\n"
        "- South\n"
        "  1. Inner\n\n"
        "| Region | Total |\n"
        "| --- | --- |\n"
        "| USA | $695 |\n\n"
        "line one\n"
        "line two"
    )


def test_title_is_the_first_title_with_whitespace_collapsed() -> None:
    assert _extract(PAGE.encode()).metadata["title"] == "Quarterly Report"


def test_a_charset_that_does_not_decode_is_ignored() -> None:
    arabic = "في قرية من القرى كان هناك رجل حكيم يعرف كل شيء عن الحياة"
    page = (
        '<html><head><meta http-equiv="Content-Type" '
        'content="text/html; charset=UTF-8"></head>'
        f"<body><p>{arabic}</p></body></html>"
    )
    result = _extract(page.encode("cp1256"))
    assert (result.text, result.metadata["encoding"]) == (arabic, "cp1256")


def test_a_charset_that_decodes_strictly_is_used() -> None:
    page = '<meta charset="koi8-r"><p>Москва</p>'
    assert _extract(page.encode("koi8-r")).text == "Москва"


def test_utf16_with_a_mark_reads_whatever_the_meta_says() -> None:
    page = '<meta charset="utf-8"><p>This is a sample text</p>'
    assert _extract(page.encode("utf-16")).text == "This is a sample text"


def test_inline_xbrl_hidden_header_is_not_text() -> None:
    page = (
        '<html xmlns:ix="http://www.xbrl.org/2013/inlineXBRL"><body>'
        "<div style='display:none'><ix:header>dei facts</ix:header></div>"
        "<p>Galaxy Gaming, Inc.</p></body></html>"
    )
    assert _extract(page.encode()).text == "Galaxy Gaming, Inc."


def test_the_text_alone_is_the_text_of_the_full_extraction() -> None:
    data = (
        b"<html><head><title>T</title></head><body><h1>Head</h1><p>One <b>two</b>"
        b"</p><ul><li>a</li><li>b</li></ul><table><tr><td>x</td><td>y</td></tr>"
        b"</table><pre>  keep\n  this</pre><p hidden>no</p></body></html>"
    )
    assert html_text(data) == extract_html(data, ExtractContext()).text


def test_one_walk_writes_text_and_markdown_of_nested_markup() -> None:
    page = (
        b"<blockquote><p>Said <em>so</em></p><ul><li><a href='/x'>one</a></li>"
        b"</ul></blockquote><h2>Top <code>x</code></h2><ol start='3'><li>c<ul>"
        b"<li>d</li></ul></li></ol><table><tr><td>a</td><td><b>b</b></td></tr>"
        b"</table>"
    )
    result = _extract(page)
    assert result.text == "Said so\none\nTop x\nc\nd\na\tb"
    assert result.markdown == (
        "> Said *so*\n>\n> - [one](/x)\n\n## Top `x`\n\n3. c\n  - d\n\n"
        "| a | **b** |\n| --- | --- |"
    )
    assert html_text(page) == result.text


def test_markup_nested_past_the_limit_is_refused_before_parsing() -> None:
    # 100,000 unclosed <div> took lexbor's tree builder 15 s or more.
    page = b"<html><body>" + b"<div>" * 100_000 + b"deep"
    with pytest.raises(
        LimitExceeded, match="more than 4096 levels, refused before parsing"
    ):
        _extract(page)
    with pytest.raises(LimitExceeded):
        html_text(page)


def test_many_tags_that_do_not_nest_deeply_are_read() -> None:
    # Closed siblings, paragraphs and list items that close each other, and
    # tags inside a script or a comment all leave the depth low.
    script = "<script>" + "'<div>' + " * 5000 + "''</script>"
    comment = "<!--" + "<div>" * 5000 + "-->"
    page = (
        "<html><body>"
        + script
        + comment
        + "<div>a</div>" * 3000
        + "<p>b" * 3000
        + "<ul>"
        + "<li>c" * 3000
        + "</ul></body></html>"
    )
    check_nesting(page)
    text = _extract(page.encode()).text
    assert text.count("a") == 3000 and text.count("b") == 3000


def test_the_nesting_estimate_follows_end_tags_that_close_inner_elements() -> None:
    assert _estimated_depth("<div><span><b>x</div>" * 5000, 10_000) == 0
    assert _estimated_depth("<section>" * 10 + "<div>" * 5, 10_000) == 15


# Markup, text beyond ASCII, a NUL, a byte-order mark inside, and a charset
# the bytes do not use.
_PIECES = ["<p>", "</p>", "<b>", "</b>", "<td>", "<br>", "<pre>", "</pre>", " ", "\n"]
_PIECES += ["a", "é", "字", "&amp;", "\x00", "\ufeff", '<meta charset="windows-1252">']
_MARKUP = st.lists(st.sampled_from(_PIECES), max_size=30).map("".join)


@settings(max_examples=300, deadline=None)
@given(markup=_MARKUP)
def test_lexbor_reads_the_utf8_bytes_as_it_reads_the_text(markup: str) -> None:
    data = markup.encode()
    decoded = decode_html(data)
    from_text = _Renderer(markdown=True).render(LexborHTMLParser(decoded.text).root)
    _decoded, _parser, root = html._parse(data)
    assert _Renderer(markdown=True).render(root) == from_text


@pytest.mark.parametrize(
    ("data", "given"),
    [
        pytest.param("<p>café</p>".encode(), bytes, id="utf-8"),
        pytest.param("<p>café</p>".encode("cp1252"), str, id="legacy"),
        pytest.param("\ufeff<p>café</p>".encode(), str, id="marked"),
    ],
)
def test_lexbor_is_given_the_bytes_of_plain_utf8(
    data: bytes, given: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []

    def parser(markup: str | bytes) -> LexborHTMLParser:
        seen.append(markup)
        return LexborHTMLParser(markup)

    monkeypatch.setattr(html, "LexborHTMLParser", parser)
    assert _extract(data).text == "café"
    assert [type(markup) for markup in seen] == [given]


@pytest.mark.parametrize("tag", ["div", "font", "b", "blockquote", "ul><li"])
def test_markup_past_the_renderers_depth_is_read_as_plain_text(tag: str) -> None:
    """
    Unclosed tags nest without end in some generated pages; past about 500
    levels of div (250 of emphasis) such a page failed limit_exceeded, and
    nothing of it was read.
    """
    closing = "</" + tag.split("><")[-1] + ">"
    page = (
        f"<html><body><p>top</p>{f'<{tag}>' * 1000}deep words"
        f"{closing * 1000}<p>after</p>"
    ).encode()

    result = _extract(page)

    assert result.text.split() == ["top", "deep", "words", "after"]
    assert "deep words" in (result.markdown or "")
    assert result.warnings == [
        f"1 element(s) nested deeper than {html.MAX_RENDERED_DEPTH} levels "
        "read as plain text, without their structure"
    ]


def test_pages_within_the_depth_are_read_by_the_plain_walk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The counting walk is for pages the plain one cannot finish."""
    monkeypatch.setattr(html, "_DeepRenderer", None)
    page = b"<div>" * 200 + b"<blockquote>quoted</blockquote>" + b"</div>" * 200

    assert _extract(page).warnings == []


def test_deep_quotes_read_the_flattened_part_once() -> None:
    """
    Each quote level prefixes every line inside it; read in full, 4,000
    levels took minutes. The flattened part has one line.
    """
    page = b"<blockquote>q" * 4000

    result = _extract(page)

    assert result.text.split("\n")[-1] == "q" * (4000 - html.MAX_RENDERED_DEPTH + 2)
    assert len(result.markdown or "") < 1_000_000


def test_a_mail_body_too_deep_for_the_walk_gives_its_words() -> None:
    assert html.html_text(b"<span>" * 2000 + b"hello there").split() == [
        "hello",
        "there",
    ]


def test_flattened_text_keeps_words_whole_and_blocks_apart() -> None:
    page = (
        b"<div>" * 700
        + b"<p>one<b>word</b></p><p>two</p>line<br>break<script>x()</script>"
        + b"<table><tr><td>a</td><td>b</td></tr></table><span hidden>no</span>end"
    )

    assert _extract(page).text.split("\n") == [
        "oneword",
        "two",
        "line",
        "break",
        "a",
        "b",
        "end",
    ]
