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
    # Codes the job store writes itself (cancel, lease recovery).
    for path in (SOURCE / "queue").glob("*.py"):
        codes |= set(re.findall(r'error_code="(\w+)"', path.read_text()))
    return codes


def readme_codes() -> set[str]:
    text = README.read_text()
    table = text[text.index("| code | meaning | retried |") :].split("\n\n")[0]
    return set(re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE))


def test_readme_table_names_every_code() -> None:
    assert emitted_codes() - readme_codes() == set()


def test_api_schema_names_every_code() -> None:
    description = ErrorOut.model_fields["code"].description or ""
    named = set(re.findall(r"\w+", description))

    assert emitted_codes() - named == set()
