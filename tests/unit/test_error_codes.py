"""Every error code docmill can record is in README's table and the API schema."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import docmill
from docmill import exceptions
from docmill.api.schemas import ErrorOut
from docmill.queue.worker import _failure

SOURCE = Path(docmill.__file__).parent
README = SOURCE.parents[1] / "README.md"


def emitted_codes() -> set[str]:
    codes = {
        cls.code
        for _, cls in inspect.getmembers(exceptions, inspect.isclass)
        if isinstance(getattr(cls, "code", None), str)
    }
    codes.add(_failure(exceptions.OriginalMissing("key"))[0])
    # Codes written as literals: by the job store (cancel, lease recovery)
    # and by readers for an archive's members.
    for path in SOURCE.rglob("*.py"):
        codes |= set(re.findall(r'error_code="(\w+)"', path.read_text()))
    return codes


def extract_only_codes() -> set[str]:
    text = (SOURCE / "local.py").read_text()
    return set(re.findall(r'"code": "(\w+)"', text))


def test_the_list_of_document_codes_is_every_code_emitted() -> None:
    assert emitted_codes() == exceptions.DOCUMENT_ERROR_CODES


def test_the_list_of_extract_only_codes_is_every_code_local_writes() -> None:
    assert extract_only_codes() == exceptions.EXTRACT_ONLY_ERROR_CODES


def test_retryable_errors_have_transient_codes() -> None:
    retryable = {
        cls.code
        for _, cls in inspect.getmembers(exceptions, inspect.isclass)
        if issubclass(cls, exceptions.ExtractionError) and cls.retryable
    }
    # A fetch's retryability is decided per failure (5xx yes, 404 no).
    retryable.add(exceptions.FetchError.code)

    assert retryable == exceptions.TRANSIENT_ERROR_CODES


def readme_codes() -> set[str]:
    text = README.read_text()
    table = text[text.index("| code | meaning | retried |") :].split("\n\n")[0]
    return set(re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE))


def test_readme_table_names_every_code() -> None:
    expected = exceptions.DOCUMENT_ERROR_CODES | exceptions.EXTRACT_ONLY_ERROR_CODES

    assert readme_codes() == expected


def test_api_schema_names_every_code() -> None:
    description = ErrorOut.model_fields["code"].description or ""
    named = set(re.findall(r"\w+", description))

    assert emitted_codes() - named == set()
