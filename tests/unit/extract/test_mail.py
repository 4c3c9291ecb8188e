from __future__ import annotations

from email.message import EmailMessage

from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult
from docmill.extract.mail import extract_email


def _message(subject: str = "Quarterly report") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Anna Berg <anna@example.com>"
    message["To"] = "ben@example.com"
    message["Subject"] = subject
    message["Date"] = "Fri, 16 Dec 2022 17:04:16 -0500"
    return message


def _extract(message: EmailMessage) -> ExtractionResult:
    ctx = ExtractContext()
    ctx.media_type = mime.EMAIL
    return extract_email(message.as_bytes(), ctx)


def test_headers_open_the_text_and_the_plain_body_follows() -> None:
    message = _message()
    message.set_content("Violets are blue.\n")
    assert _extract(message).text == (
        "From: Anna Berg <anna@example.com>\n"
        "To: ben@example.com\n"
        "Date: Fri, 16 Dec 2022 17:04:16 -0500\n"
        "Subject: Quarterly report\n"
        "\n"
        "Violets are blue."
    )


def test_encoded_words_in_the_subject_are_decoded() -> None:
    message = _message("Simple email with ☸☿ Unicode subject")
    message.set_content("body")
    assert _extract(message).metadata["subject"] == (
        "Simple email with ☸☿ Unicode subject"
    )


def test_the_plain_alternative_is_preferred_to_html() -> None:
    message = _message()
    message.set_content("plain version")
    message.add_alternative("<p>html <b>version</b></p>", subtype="html")
    assert _extract(message).text.endswith("\n\nplain version")


def test_an_html_only_body_is_converted_to_text() -> None:
    message = _message()
    message.set_content("<p>Dear Vladimir</p><script>x()</script>", subtype="html")
    assert _extract(message).text.endswith("\n\nDear Vladimir")


def test_attachments_become_children_and_are_counted() -> None:
    message = _message()
    message.set_content("see attached")
    message.add_attachment(b"alpha notes\n", "text", "plain", filename="a.txt")
    message.add_attachment(b"", "application", "octet-stream", filename="empty.bin")
    result = _extract(message)
    assert [
        (child.name, child.result.text if child.result else child.error_code)
        for child in result.children
    ] == [("a.txt", "alpha notes\n"), ("empty.bin", "empty")]
    assert result.metadata["attachments"] == 2


def test_an_attached_message_is_a_child_named_after_its_subject() -> None:
    inner = _message("Forwarded")
    inner.set_content("inner body")
    message = _message()
    message.set_content("fyi")
    message.add_attachment(inner)
    assert [child.name for child in _extract(message).children] == ["Forwarded.eml"]


def test_a_wrong_charset_label_falls_back_to_detection() -> None:
    message = _message()
    message.set_content("Grüße aus Köln, schöne Grüße\n" * 5, charset="utf-8")
    data = message.as_bytes().replace(b"utf-8", b"x-unknown")
    ctx = ExtractContext()
    assert "Grüße aus Köln" in extract_email(data, ctx).text


def test_raw_8bit_headers_are_decoded_like_any_text() -> None:
    # Mail software that ignores RFC 2047 writes its own code page into the
    # headers; they read as text, not as U+FFFD.
    data = (
        "From: Jörg Müller <j@example.com>\nTo: bob@example.com\n"
        "Subject: Grüße aus Köln, schöne Grüße\nMessage-ID: <a@b>\n\nBody.\n"
    ).encode("cp1252")
    metadata = extract_email(data, ExtractContext()).metadata
    assert metadata["from"] == "Jörg Müller <j@example.com>"
    assert metadata["subject"] == "Grüße aus Köln, schöne Grüße"


def test_unparsable_headers_are_kept_as_written() -> None:
    data = (
        b"From: broken <<<@@\nTo: =?bogus?q?x?= <a@b>\nDate: not a date\n"
        b"Message-ID: <a@b>\n\nBody.\n"
    )
    metadata = extract_email(data, ExtractContext()).metadata
    assert metadata["from"] == "broken <<<@@"
    assert metadata["to"] == "=?bogus?q?x?= <a@b>"
    assert metadata["date"] == "not a date"


def test_an_encoded_attachment_name_is_decoded() -> None:
    message = _message()
    message.set_content("see attached")
    message.add_attachment(b"notes\n", "text", "plain", filename="Grüße.txt")
    assert [child.name for child in _extract(message).children] == ["Grüße.txt"]
