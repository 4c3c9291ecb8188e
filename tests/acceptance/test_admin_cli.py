"""
Admin verbs (``keys``, ``db``, ``queue``) against a database that may not be
there yet: one clear line and an exit code, never a traceback.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from docmill.api.app import build_services
from docmill.db.migrate import upgrade
from docmill.queue.store import NewDocument
from docmill.settings import Settings
from tests.acceptance.test_worker_cli import queue_texts
from tests.conftest import reset_postgres
from tests.support import run_cli


def test_keys_before_the_first_serve_says_what_to_run(tmp_path: Path) -> None:
    done = run_cli("keys", "create", "ci", cwd=tmp_path)

    assert (done.returncode, done.stdout) == (2, "")
    assert len(done.stderr.splitlines()) == 1
    assert "`docmill db upgrade`" in done.stderr
    assert not (tmp_path / "docmill-data").exists()


def test_keys_take_the_data_dir_of_other_admin_verbs(tmp_path: Path) -> None:
    data = str(tmp_path / "elsewhere")
    upgraded = run_cli("db", "upgrade", "--data-dir", data, cwd=tmp_path)

    created = run_cli("keys", "create", "ci", "--data-dir", data, cwd=tmp_path)
    listed = run_cli("keys", "list", "--data-dir", data, cwd=tmp_path)

    assert (upgraded.returncode, created.returncode) == (0, 0), created.stderr
    assert created.stdout.startswith("dm_")
    assert " active " in listed.stdout and listed.stdout.rstrip().endswith(" ci")


def test_keys_on_a_database_without_schema_say_what_to_run(tmp_path: Path) -> None:
    (tmp_path / "docmill-data").mkdir()
    sqlite3.connect(tmp_path / "docmill-data" / "docmill.db").close()

    done = run_cli("keys", "list", cwd=tmp_path)

    assert (done.returncode, len(done.stderr.splitlines())) == (2, 1)
    assert "run `docmill db upgrade` first" in done.stderr


def test_db_upgrade_says_it_created_the_schema_then_that_it_is_current(
    tmp_path: Path,
) -> None:
    first = run_cli("db", "upgrade", cwd=tmp_path)
    second = run_cli("db", "upgrade", cwd=tmp_path)

    assert first.stderr.startswith("database schema created (revision ")
    assert second.stderr.startswith("database schema is current (revision ")


def test_retry_of_an_unknown_document_is_an_error(tmp_path: Path) -> None:
    run_cli("db", "upgrade", cwd=tmp_path)

    done = run_cli("queue", "retry", "nosuchdocument", cwd=tmp_path)

    assert (done.returncode, done.stderr) == (
        1,
        "docmill: no document with id 'nosuchdocument'\n",
    )


def test_retry_of_a_document_that_did_not_fail_is_an_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "docmill-data")
    [document_id] = asyncio.run(queue_texts(settings, ["still pending"]))

    done = run_cli("queue", "retry", document_id, cwd=tmp_path)

    assert (done.returncode, done.stderr) == (
        1,
        f"docmill: document {document_id!r} is pending, not failed\n",
    )


def test_retry_of_an_unknown_error_code_names_the_codes(tmp_path: Path) -> None:
    run_cli("db", "upgrade", cwd=tmp_path)

    done = run_cli("queue", "retry", "--code", "bogus", cwd=tmp_path)

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(
        "docmill: --code 'bogus' is not an error code a failed document can "
        "have; one of: corrupt, empty, encrypted, "
    )
    assert "worker_crash" in done.stderr and "cancelled" not in done.stderr


def test_retry_takes_all_or_codes_not_both(tmp_path: Path) -> None:
    done = run_cli("queue", "retry", "--all", "--code", "timeout", cwd=tmp_path)

    assert (done.returncode, done.stderr) == (
        2,
        "docmill: --all retries every code; pass --all or --code, not both\n",
    )


async def fail_texts(
    settings: Settings, texts: list[str], code: str = "worker_crash"
) -> list[str]:
    ids = await queue_texts(settings, texts)
    services = build_services(settings)
    for _ in ids:
        claim = await services.store.claim_next("w:1")
        await services.store.fail(claim, code, "broken", retryable=False)
    await services.engine.dispose()
    return ids


def test_bare_retry_leaves_errors_that_would_repeat(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "docmill-data")
    asyncio.run(fail_texts(settings, ["one", "two"], "encrypted"))
    asyncio.run(fail_texts(settings, ["three"], "unsupported_format"))
    asyncio.run(fail_texts(settings, ["four"], "timeout"))

    done = run_cli("queue", "retry", cwd=tmp_path)

    assert (done.returncode, done.stderr.splitlines()) == (
        0,
        [
            "1 document(s) queued again",
            "3 document(s) left failed, with errors another attempt would most "
            "likely repeat (encrypted 2, unsupported_format 1); retry them with "
            "--code CODE or --all",
        ],
    )


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(["--all"], id="all"),
        pytest.param(["--code", "encrypted", "--code", "timeout"], id="codes"),
    ],
)
def test_retry_named_codes_or_all_takes_any_error(
    tmp_path: Path, options: list[str]
) -> None:
    settings = Settings(data_dir=tmp_path / "docmill-data")
    asyncio.run(fail_texts(settings, ["one"], "encrypted"))
    asyncio.run(fail_texts(settings, ["two"], "timeout"))

    done = run_cli("queue", "retry", *options, cwd=tmp_path)

    assert (done.returncode, done.stderr) == (0, "2 document(s) queued again\n")


def test_retry_of_a_named_document_takes_any_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "docmill-data")
    [document_id] = asyncio.run(fail_texts(settings, ["one"], "encrypted"))

    done = run_cli("queue", "retry", document_id, cwd=tmp_path)

    assert (done.returncode, done.stderr) == (0, "1 document(s) queued again\n")


def test_retry_past_the_queue_limit_is_refused_unless_forced(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "docmill-data")
    asyncio.run(fail_texts(settings, ["one", "two", "three"]))
    limit = {"DOCMILL_MAX_PENDING": "2"}

    refused = run_cli("queue", "retry", cwd=tmp_path, env=limit)
    forced = run_cli("queue", "retry", "--force", cwd=tmp_path, env=limit)

    assert (refused.returncode, refused.stderr) == (
        1,
        "docmill: retrying 3 document(s) would leave 3 waiting, past "
        "DOCMILL_MAX_PENDING (2); none queued again. Retry fewer (IDs, --code), "
        "raise DOCMILL_MAX_PENDING, or pass --force\n",
    )
    assert (forced.returncode, forced.stderr.splitlines()) == (
        0,
        [
            "3 document(s) queued again",
            "3 documents are waiting, past DOCMILL_MAX_PENDING (2): submissions "
            "get 429 until the queue is below it",
        ],
    )


def test_purge_says_how_many_documents_it_deleted(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "docmill-data")
    asyncio.run(queue_texts(settings, ["one", "two"]))
    drained = run_cli("worker", "--once", "-c", "1", cwd=tmp_path)

    done = run_cli("queue", "purge", "--older-than-days", "0", cwd=tmp_path)

    assert drained.returncode == 0, drained.stderr
    assert done.stderr.splitlines()[0] == "purged 2 document(s); 2 original(s) deleted"


def test_the_operator_deletes_a_shared_parser(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    rules = tmp_path / "memo.json"
    rules.write_text(
        '{"name": "memo", "fields": {"v": {"rule": "constant", "value": 1}}}'
    )
    run_cli("db", "upgrade", "--data-dir", data, cwd=tmp_path)
    applied = run_cli("parsers", "apply", str(rules), "--data-dir", data, cwd=tmp_path)

    deleted = run_cli("parsers", "delete", "memo", "--data-dir", data, cwd=tmp_path)
    listed = run_cli("parsers", "list", "--data-dir", data, cwd=tmp_path)
    again = run_cli("parsers", "delete", "memo", "--data-dir", data, cwd=tmp_path)

    assert (applied.returncode, deleted.returncode, listed.stdout) == (0, 0, "")
    assert (again.returncode, again.stderr.strip()) == (1, "no shared parser 'memo'")


def test_parsers_before_the_first_serve_say_what_to_run(tmp_path: Path) -> None:
    """``apply`` made a database there, where no server would read the parser."""
    rules = tmp_path / "memo.json"
    rules.write_text(
        '{"name": "memo", "fields": {"v": {"rule": "constant", "value": 1}}}'
    )
    listed = run_cli("parsers", "list", cwd=tmp_path)
    deleted = run_cli("parsers", "delete", "memo", cwd=tmp_path)
    applied = run_cli("parsers", "apply", str(rules), cwd=tmp_path)

    for done in (listed, deleted, applied):
        assert (done.returncode, len(done.stderr.splitlines())) == (2, 1)
        assert "`docmill db upgrade`" in done.stderr
    assert not (tmp_path / "docmill-data").exists()


@pytest.mark.postgres
def test_serve_on_an_unmigrated_postgres_refuses_to_start(
    tmp_path: Path, postgres_url: str
) -> None:
    asyncio.run(reset_postgres(postgres_url))

    done = run_cli(
        "serve", "--database-url", postgres_url, "--port", "18791", cwd=tmp_path
    )

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "docmill: the database schema is missing or older than this docmill; "
        "run `docmill db upgrade` first (with the same --database-url), then "
        "serve\n"
    )


@pytest.mark.postgres
def test_worker_on_an_unmigrated_postgres_refuses_to_start(
    tmp_path: Path, postgres_url: str
) -> None:
    asyncio.run(reset_postgres(postgres_url))

    done = run_cli("worker", "--once", "--database-url", postgres_url, cwd=tmp_path)

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "docmill: the database schema is missing or older than this docmill; "
        "run `docmill db upgrade` first (with the same --database-url), then "
        "start the worker\n"
    )


def test_worker_refuses_a_data_dir_without_a_database(tmp_path: Path) -> None:
    """
    As the admin verbs do: a mistyped --data-dir made a new, empty database
    and the worker sat idle on it.
    """
    typo = tmp_path / "dat"

    done = run_cli("worker", "--once", "--data-dir", str(typo), cwd=tmp_path)

    assert (done.returncode, done.stdout, len(done.stderr.splitlines())) == (2, "", 1)
    assert f"no docmill database at {typo / 'docmill.db'}" in done.stderr
    assert not typo.exists()


def test_worker_on_an_upgraded_sqlite_database_runs(tmp_path: Path) -> None:
    upgraded = run_cli("db", "upgrade", cwd=tmp_path)
    drained = run_cli("worker", "--once", "-c", "1", cwd=tmp_path)

    assert (upgraded.returncode, drained.returncode) == (0, 0), drained.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["queue", "purge", "--older-than-days", "1e308"], id="1e308"),
        pytest.param(["queue", "purge", "--older-than-days", "1e9"], id="1e9"),
        pytest.param(["queue", "purge", "--older-than-days", "800000"], id="800000"),
        pytest.param(["queue", "failed", "--limit", "-1"], id="limit-negative"),
        pytest.param(["queue", "stats", "--database-url", "bogus://x"], id="bogus-url"),
        pytest.param(["worker", "--once", "--concurrency", "-1"], id="concurrency"),
    ],
)
def test_bad_values_are_one_line_usage_errors(tmp_path: Path, args: list[str]) -> None:
    """Each was a traceback, or was taken as it came (a limit of -1: no limit)."""
    upgraded = run_cli("db", "upgrade", cwd=tmp_path)

    done = run_cli(*args, cwd=tmp_path)

    assert upgraded.returncode == 0
    assert (done.returncode, done.stdout, len(done.stderr.splitlines())) == (2, "", 1)


@pytest.mark.parametrize(
    "command",
    [["serve", "--port", "0"], ["worker", "--once"], ["db", "upgrade"]],
    ids=["serve", "worker", "db-upgrade"],
)
def test_a_database_docmill_cannot_run_on_is_a_one_line_settings_error(
    tmp_path: Path, command: list[str]
) -> None:
    """A driver SQLAlchemy knows but docmill does not run on was a traceback."""
    url = "mysql+pymysql://docmill:secret@127.0.0.1:1/docmill"

    done = run_cli(*command, cwd=tmp_path, env={"DOCMILL_DATABASE_URL": url})

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "docmill: invalid setting database_url (DOCMILL_DATABASE_URL or its "
        "option): 'mysql+pymysql' is not a database and driver docmill runs on; "
        "use sqlite:// or postgresql:// (also written sqlite+aiosqlite://, "
        "postgres:// or postgresql+asyncpg://)\n"
    )


def test_an_empty_database_url_is_no_url(tmp_path: Path) -> None:
    """``DOCMILL_DATABASE_URL=`` made a stray database, then found no schema."""
    done = run_cli("queue", "stats", cwd=tmp_path, env={"DOCMILL_DATABASE_URL": ""})

    assert (done.returncode, "no docmill database at" in done.stderr) == (2, True)
    assert not (tmp_path / "docmill-data").exists()


def test_an_empty_data_dir_is_a_one_line_settings_error(tmp_path: Path) -> None:
    """``DOCMILL_DATA_DIR=`` put the database in the current directory."""
    done = run_cli("db", "upgrade", cwd=tmp_path, env={"DOCMILL_DATA_DIR": ""})

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "docmill: invalid setting data_dir (DOCMILL_DATA_DIR or its option): "
        "must not be empty; unset it for the default (docmill-data), or give . "
        "for the current directory\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_data_dir_that_cannot_be_one_is_refused_in_a_line(
    tmp_path: Path, command: str
) -> None:
    """A file by that name was a traceback from the server's start-up."""
    taken = tmp_path / "a-file"
    taken.write_text("not a directory")

    done = run_cli(command, "--data-dir", str(taken), cwd=tmp_path)

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"docmill: cannot use the data directory {taken} (--data-dir or "
        "DOCMILL_DATA_DIR): it is not a directory\n"
    )


@pytest.mark.parametrize("command", [["queue", "stats"], ["db", "upgrade"]])
def test_an_empty_data_dir_option_is_refused(
    tmp_path: Path, command: list[str]
) -> None:
    """``--data-dir ""`` was the current directory, as the variable was."""
    done = run_cli(*command, "--data-dir", "", cwd=tmp_path)

    assert done.returncode == 2
    assert "must not be empty" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_postgresql_without_asyncpg_is_a_one_line_settings_error(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    # docmill's own start (cli.main), with asyncpg made unimportable first.
    program = (
        "import sys; sys.modules['asyncpg'] = None; "
        "from docmill.cli import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, "queue", "stats"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"DOCMILL_DATABASE_URL": "postgresql://u@127.0.0.1:1/none"}
        | {k: v for k, v in os.environ.items() if not k.startswith("DOCMILL_")},
    )

    assert (done.returncode, done.stdout, len(done.stderr.splitlines())) == (2, "", 1)
    assert "install docmill's postgres extra (pip install 'docmill[postgres]')" in (
        done.stderr
    )


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_plain_postgresql_url_is_served_on_asyncpg(
    tmp_path: Path, postgres_url: str, scheme: str
) -> None:
    """The URL as libpq and hosting pages write it was a traceback."""
    asyncio.run(reset_postgres(postgres_url))
    plain = postgres_url.replace("postgresql+asyncpg://", f"{scheme}://")

    upgraded = run_cli("db", "upgrade", "--database-url", plain, cwd=tmp_path)
    stats = run_cli("queue", "stats", cwd=tmp_path, env={"DOCMILL_DATABASE_URL": plain})

    assert (upgraded.returncode, stats.returncode) == (0, 0), upgraded.stderr
    assert stats.stdout.startswith("pending")


def test_a_plain_sqlite_url_is_served_on_aiosqlite(tmp_path: Path) -> None:
    plain = f"sqlite:///{tmp_path / 'docmill.db'}"

    upgraded = run_cli("db", "upgrade", "--database-url", plain, cwd=tmp_path)
    stats = run_cli("queue", "stats", "--database-url", plain, cwd=tmp_path)

    assert (upgraded.returncode, stats.returncode) == (0, 0), stats.stderr


def test_serve_refuses_a_port_past_65535(tmp_path: Path) -> None:
    """It listened on the port modulo 65536 (27100 for this one)."""
    import os
    import subprocess
    import sys

    environment = {k: v for k, v in os.environ.items() if not k.startswith("DOCMILL_")}
    done = subprocess.run(
        [sys.executable, "-m", "docmill.cli", "serve", "--port", str(65536 + 27100)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env=environment,
    )

    assert done.returncode == 2
    assert "port (DOCMILL_PORT or its option)" in done.stderr


@pytest.mark.parametrize(
    ("name", "error"),
    [
        pytest.param("", "a key's name must not be empty", id="empty"),
        pytest.param("  ", "a key's name must not be empty", id="blank"),
        pytest.param(
            "k" * 10_000,
            "a key's name has at most 200 characters, not 10000",
            id="long",
        ),
        pytest.param(
            "two\nlines",
            "a key's name must be one line of printable characters",
            id="newline",
        ),
    ],
)
def test_keys_create_refuses_a_bad_name_in_one_line(
    tmp_path: Path, database_url: str, name: str, error: str
) -> None:
    url = ["--database-url", database_url]
    run_cli("db", "upgrade", *url, cwd=tmp_path)

    done = run_cli("keys", "create", name, *url, cwd=tmp_path)
    listed = run_cli("keys", "list", *url, cwd=tmp_path)

    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"docmill: {error}\n")
    assert listed.stdout == ""


def test_keys_create_takes_a_name_of_200_characters(tmp_path: Path) -> None:
    run_cli("db", "upgrade", cwd=tmp_path)

    done = run_cli("keys", "create", "k" * 200, cwd=tmp_path)

    assert done.returncode == 0, done.stderr


def test_failed_lists_a_url_submission_by_its_url(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "docmill-data")
    url = "http://127.0.0.1:9/report.pdf"

    async def queue_url() -> None:
        services = build_services(settings)
        await upgrade(services.engine)
        await services.store.create(NewDocument("url", "", 0, "", source_url=url))
        await services.engine.dispose()

    asyncio.run(queue_url())
    run_cli("worker", "--once", cwd=tmp_path)

    done = run_cli("queue", "failed", cwd=tmp_path)

    assert done.stdout.split("  ")[-1].startswith(f"{url}: ")
