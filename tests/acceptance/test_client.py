"""docmill.client, and the CLI verbs on it, against a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from docmill.api.app import create_app
from docmill.cli import app as cli
from docmill.client import ApiError, AsyncClient, Client
from docmill.settings import Settings
from tests.support import served


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    """The API with its workers, served by uvicorn on a free 127.0.0.1 port."""
    with served(create_app(settings)) as url:
        yield url


def test_client_submits_waits_and_reads_text(server: str, tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("words for the client")

    with Client(server) as client:
        created = client.submit(note, client_ref="c-1")
        done = client.wait(created.id, timeout=30, poll=0.05)
        text = client.text(done.id)
        page = client.list(client_ref="c-1")

    assert (done.status, text) == ("completed", "words for the client")
    assert [d.id for d in page.items] == [created.id]


def test_client_raises_problems(server: str) -> None:
    with Client(server) as client, pytest.raises(ApiError) as caught:
        client.get("nope")

    assert caught.value.type == "urn:docmill:problem:document-not-found"


@pytest.mark.anyio
async def test_async_client_in_process(settings: Settings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with AsyncClient("http://docmill.test", transport=transport) as client:
            created = await client.submit_json(content="async words")
            done = await client.wait(created.id, timeout=30, poll=0.05)

            assert await client.text(done.id) == "async words"


def test_cli_submit_wait_and_status(server: str, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("first file")
    (tmp_path / "b.txt").write_text("second file")
    runner = CliRunner()

    submitted = runner.invoke(
        cli,
        ["submit", str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), "--wait"],
        env={"DOCMILL_SERVER": server},
    )
    lines = [json.loads(line) for line in submitted.stdout.splitlines()]
    shown = runner.invoke(cli, ["status", lines[0]["id"], "--server", server])

    assert submitted.exit_code == 0, submitted.output
    assert [line["status"] for line in lines] == ["completed", "completed"]
    assert json.loads(shown.stdout)["result"]["word_count"] == 2


def test_cli_submit_declares_the_charset_given(server: str, tmp_path: Path) -> None:
    (tmp_path / "ru.txt").write_bytes("Москва".encode("koi8_r"))
    runner = CliRunner()

    submitted = runner.invoke(
        cli,
        ["submit", str(tmp_path / "ru.txt"), "--charset", "koi8-r", "--wait"],
        env={"DOCMILL_SERVER": server},
    )
    line = json.loads(submitted.stdout)
    with Client(server) as client:
        text = client.text(line["id"])

    assert (line["charset"], text) == ("koi8-r", "Москва")


def test_cli_keys_create_list_revoke(
    server: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCMILL_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("DOCMILL_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()

    created = runner.invoke(cli, ["keys", "create", "ci"])
    token = created.stdout.strip()
    listed = runner.invoke(cli, ["keys", "list"])
    revoked = runner.invoke(cli, ["keys", "revoke", token.split("_")[1]])
    again = runner.invoke(cli, ["keys", "revoke", token.split("_")[1]])

    assert token.startswith("dm_") and token not in listed.stdout
    assert "active" in listed.stdout and "ci" in listed.stdout
    assert (revoked.exit_code, again.exit_code) == (0, 1)
