"""The upload page at ``/``, its script run by Node against a real server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from docmill.api.app import create_app
from docmill.db.engine import create_engine
from docmill.queue.keys import KeyStore
from docmill.settings import Settings
from tests.support import served

NODE = shutil.which("node")
USER = Path(__file__).with_name("page_user.mjs")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    # The page is the subject here, not the database: SQLite is enough.
    return f"sqlite+aiosqlite:///{tmp_path / 'docmill.db'}"


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    """The API with auth on, served by uvicorn on a free 127.0.0.1 port."""
    with served(create_app(settings.model_copy(update={"auth": "on"}))) as url:
        yield url


def new_token(settings: Settings) -> str:
    async def create() -> str:
        engine = create_engine(settings.resolved_database_url)
        try:
            return (await KeyStore(engine).create("page")).token
        finally:
            await engine.dispose()

    return asyncio.run(create())


def use_page(
    server: str, tmp_path: Path, *keys: str, fail_poll: int | None = None
) -> list[dict[str, Any]]:
    """
    What the page sent and showed at each step of page_user.mjs; with
    ``fail_poll``, its first poll of the list gets a problem of that status.
    """
    if NODE is None:
        pytest.skip("Node.js is not installed; it runs the page's script")
    page = httpx.get(server + "/").text
    script = tmp_path / "page.js"
    script.write_text(page.split("<script>")[1].split("</script>")[0])
    done = subprocess.run(
        [NODE, str(USER), server, str(script), *keys],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | ({"PAGE_USER_FAIL_POLL": str(fail_poll)} if fail_poll else {}),
    )
    assert done.returncode == 0, done.stderr
    steps: list[dict[str, Any]] = json.loads(done.stdout)
    return steps


def test_files_refused_for_want_of_a_key_go_once_it_is_given(
    server: str, settings: Settings, tmp_path: Path
) -> None:
    token = new_token(settings)
    bearer = f"Bearer {token}"

    steps = use_page(server, tmp_path, "dm_wrong_key", token)

    assert [(s["step"], s["sent"], s["keyFormHidden"], s["note"]) for s in steps] == [
        ("opened", [["GET", "/documents?limit=50", None]], False, ""),
        (
            "uploaded",
            [["POST", "/documents", None]],
            False,
            "2 files wait for an API key",
        ),
        (
            "key given",
            [
                ["GET", "/documents?limit=50", "Bearer dm_wrong_key"],
                ["POST", "/documents", "Bearer dm_wrong_key"],
            ],
            False,
            "2 files wait for an API key",
        ),
        (
            "key given",
            [
                ["GET", "/documents?limit=50", bearer],
                ["POST", "/documents", bearer],
                ["POST", "/documents", bearer],
                ["GET", "/documents?limit=50", bearer],
            ],
            True,
            "queued b.txt",
        ),
        ("polled", [["GET", "/documents?limit=50", bearer]], True, "queued b.txt"),
        ("polled", [["GET", "/documents?limit=50", bearer]], True, "queued b.txt"),
    ]
    assert steps[2]["keynote"] == "that key was refused"
    assert steps[-1]["rows"] == 2


def test_uploaded_files_reach_the_server_under_the_key(
    server: str, settings: Settings, tmp_path: Path
) -> None:
    token = new_token(settings)

    use_page(server, tmp_path, token)
    listed = httpx.get(
        server + "/documents", headers={"Authorization": f"Bearer {token}"}
    ).json()

    assert sorted(d["filename"] for d in listed["items"]) == ["a.txt", "b.txt"]


@pytest.mark.parametrize("status", [429, 503])
def test_a_list_that_cannot_be_refreshed_is_marked_stale(
    server: str, settings: Settings, tmp_path: Path, status: int
) -> None:
    token = new_token(settings)

    steps = use_page(server, tmp_path, token, fail_poll=status)

    failed, recovered = steps[-2], steps[-1]
    assert failed["rows"] == 2, "the last list stays on screen"
    assert failed["stale"] == (
        f"The list could not be refreshed ({status} refused by page_user.mjs); "
        "it may be out of date."
    )
    assert (recovered["rows"], recovered["stale"]) == (2, "")


def test_a_refused_upload_shows_the_problem_detail(
    settings: Settings, tmp_path: Path
) -> None:
    small = settings.model_copy(update={"auth": "on", "max_upload_bytes": 5})
    with served(create_app(small)) as server:
        # The server's start-up made the schema the key goes in.
        steps = use_page(server, tmp_path, new_token(settings))

    assert steps[-1]["note"] == (
        "refused b.txt: 413 the document is larger than the limit of 5 bytes"
    )
