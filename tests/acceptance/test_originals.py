"""How the worker hands a document's original to its extraction child."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from docmill.storage import SMALL_BYTES, DatabaseStorage, LocalStorage
from tests.support import wait_final

pytestmark = pytest.mark.anyio


@pytest.fixture
def copied(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys of the originals copied to a local file, in order."""
    keys: list[str] = []

    def spy(real: Callable[..., Any]) -> Callable[..., Any]:
        def local_copy(self: Any, key: str) -> Any:
            keys.append(key)
            return real(self, key)

        return local_copy

    for kind in (LocalStorage, DatabaseStorage):
        monkeypatch.setattr(kind, "local_copy", spy(kind.local_copy))
    return keys


async def test_only_an_original_past_the_small_size_is_copied_to_a_file(
    client: httpx.AsyncClient, copied: list[str]
) -> None:
    """
    A small original goes to the child as bytes read from its row: no
    scratch file is written for it, nor read back by the child.
    """
    small = b"a small note\n" * 100
    large = b"a larger note\n" * (SMALL_BYTES // 14 + 1)
    created = [
        (
            await client.post("/documents", files={"file": (name, io.BytesIO(data))})
        ).json()
        for name, data in (("small.txt", small), ("large.txt", large))
    ]

    finals = [await wait_final(client, document["id"]) for document in created]

    assert [body["status"] for body in finals] == ["completed", "completed"]
    assert copied == [created[1]["sha256"]]
