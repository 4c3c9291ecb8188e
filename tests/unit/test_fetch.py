"""The address guard: which hosts outgoing requests may reach."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from docmill import fetch
from docmill.exceptions import FetchError, ForbiddenAddress, LimitExceeded, TooLarge
from docmill.settings import Settings
from docmill.storage import LocalStorage
from tests.servers import Handler, Route, local_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """A DNS of the test's own: no lookup leaves the machine."""
    names: dict[str, list[str]] = {}

    async def resolve(host: str, port: int) -> list[str]:
        if host not in names:
            raise OSError(f"unknown host {host}")
        return names[host]

    monkeypatch.setattr(fetch, "resolve", resolve)
    return names


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1/", id="loopback-v4"),
        pytest.param("http://[::1]/", id="loopback-v6"),
        pytest.param("http://10.1.2.3/", id="private-10"),
        pytest.param("http://192.168.0.1/", id="private-192"),
        pytest.param("http://169.254.169.254/latest/meta-data/", id="metadata"),
        pytest.param("http://[::ffff:127.0.0.1]/", id="v4-mapped-loopback"),
        pytest.param("http://0.0.0.0/", id="unspecified"),
        pytest.param("http://[64:ff9b::7f00:1]/", id="nat64-loopback"),
        pytest.param("http://[64:ff9b::a9fe:a9fe]/", id="nat64-metadata"),
        pytest.param("http://[64:ff9b:1::808:808]/", id="nat64-local-use"),
        pytest.param("http://[2002:7f00:1::]/", id="6to4-loopback"),
        pytest.param("http://[2002:a00:1::1]/", id="6to4-private"),
        pytest.param("http://[::127.0.0.1]/", id="v4-compatible-loopback"),
        pytest.param("http://[::10.0.0.1]/", id="v4-compatible-private"),
        pytest.param(
            "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", id="teredo-test-net"
        ),
    ],
)
async def test_guard_refuses_non_public_addresses(url: str) -> None:
    with pytest.raises(ForbiddenAddress):
        await fetch.AddressGuard().pin(httpx.URL(url))


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://[64:ff9b::5db8:d822]/", id="nat64"),
        pytest.param("http://[2002:5db8:d822::1]/", id="6to4"),
    ],
)
async def test_guard_admits_an_embedded_public_ipv4_address(url: str) -> None:
    pinned = await fetch.AddressGuard().pin(httpx.URL(url))

    assert pinned.headers["Host"] == httpx.URL(url).netloc.decode("ascii")


async def test_allow_list_admits_an_embedded_private_ipv4_address() -> None:
    guard = fetch.AddressGuard(["127.0.0.0/8"])

    pinned = await guard.pin(httpx.URL("http://[64:ff9b::7f00:1]:8080/x"))

    assert pinned.url.port == 8080


async def test_guard_refuses_a_name_resolving_to_loopback(
    resolver: dict[str, list[str]],
) -> None:
    resolver["sneaky.example"] = ["127.0.0.1"]

    with pytest.raises(ForbiddenAddress) as caught:
        await fetch.AddressGuard().pin(httpx.URL("http://sneaky.example/"))

    assert caught.value.address == "127.0.0.1"


async def test_guard_refuses_a_name_with_any_private_address(
    resolver: dict[str, list[str]],
) -> None:
    resolver["mixed.example"] = ["93.184.216.34", "10.0.0.7"]

    with pytest.raises(ForbiddenAddress):
        await fetch.AddressGuard().pin(httpx.URL("http://mixed.example/"))


async def test_guard_pins_a_public_name_to_its_checked_address(
    resolver: dict[str, list[str]],
) -> None:
    resolver["docs.example"] = ["93.184.216.34"]

    pinned = await fetch.AddressGuard().pin(httpx.URL("https://docs.example/a.pdf"))

    assert (pinned.url.host, pinned.headers["Host"]) == (
        "93.184.216.34",
        "docs.example",
    )
    assert pinned.extensions == {"sni_hostname": "docs.example"}


async def test_allow_list_admits_a_private_network() -> None:
    guard = fetch.AddressGuard(["127.0.0.0/8"])

    pinned = await guard.pin(httpx.URL("http://127.0.0.1:8080/x"))

    assert pinned.headers["Host"] == "127.0.0.1:8080"


async def test_unresolvable_name_is_a_retryable_fetch_error(
    resolver: dict[str, list[str]],
) -> None:
    with pytest.raises(FetchError) as caught:
        await fetch.AddressGuard().pin(httpx.URL("http://nowhere.example/"))

    assert (caught.value.code, caught.value.retryable) == ("fetch_failed", True)


async def test_other_schemes_are_refused() -> None:
    with pytest.raises(FetchError):
        await fetch.AddressGuard().pin(httpx.URL("file:///etc/passwd"))


async def test_fetch_past_the_upload_time_limit_is_a_fetch_error(
    tmp_path: Path,
) -> None:
    """Not `original_missing`, which a storage error would be recorded as."""
    storage = LocalStorage(tmp_path / "originals", upload_timeout_seconds=1e-9)
    settings = Settings(data_dir=tmp_path, fetch_allow_networks=["127.0.0.1/32"])

    routes = {"/big": lambda h: h.answer(200, b"x" * 3_000_000)}
    with local_server(routes) as site, pytest.raises(FetchError) as caught:
        await fetch.fetch_to_storage(site.url("/big"), storage, settings)

    assert (caught.value.code, caught.value.retryable) == ("fetch_failed", True)


def _encoded(body: bytes, encoding: str) -> Route:
    def answer(handler: Handler) -> None:
        handler.answer(200, body, {"Content-Encoding": encoding})

    return answer


async def test_a_gzip_bomb_is_too_large_without_inflating_whole(
    tmp_path: Path,
) -> None:
    """httpx inflated each network chunk whole: 64 KB became 64 MiB at once."""
    storage = LocalStorage(tmp_path / "originals")
    settings = Settings(
        data_dir=tmp_path,
        fetch_allow_networks=["127.0.0.1/32"],
        max_upload_bytes=1024 * 1024,
    )
    bomb = gzip.compress(bytes(64 * 1024 * 1024))

    with local_server({"/bomb": _encoded(bomb, "gzip")}) as site:
        tracemalloc.start()
        try:
            with pytest.raises(TooLarge):
                await fetch.fetch_to_storage(site.url("/bomb"), storage, settings)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    assert peak < 16 * 1024 * 1024
    assert site.received[0].headers["Accept-Encoding"] == "gzip, deflate"


async def test_a_gzip_bomb_within_the_size_limit_is_refused_early(
    tmp_path: Path,
) -> None:
    """It was stored whole: 64 MiB from 64 KB, under a 128 MiB limit."""
    storage = LocalStorage(tmp_path / "originals")
    settings = Settings(
        data_dir=tmp_path,
        fetch_allow_networks=["127.0.0.1/32"],
        max_upload_bytes=128 * 1024 * 1024,
    )
    bomb = gzip.compress(bytes(64 * 1024 * 1024))

    route = {"/bomb": _encoded(bomb, "gzip")}
    with local_server(route) as site, pytest.raises(LimitExceeded) as caught:
        await fetch.fetch_to_storage(site.url("/bomb"), storage, settings)

    assert caught.value.code == "limit_exceeded"
    assert "inflated to more than 100 times its size" in caught.value.message
    assert [p for p in (tmp_path / "originals").rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        pytest.param("gzip", gzip.compress, id="gzip"),
        pytest.param(
            "gzip",
            lambda b: gzip.compress(b[:5]) + gzip.compress(b[5:]),
            id="gzip-members",
        ),
        pytest.param("deflate", zlib.compress, id="deflate"),
        pytest.param(
            "deflate", lambda b: zlib.compress(b, wbits=-15), id="raw-deflate"
        ),
        pytest.param("identity", lambda b: b, id="identity"),
    ],
)
async def test_an_encoded_body_is_stored_decoded(
    tmp_path: Path, encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    storage = LocalStorage(tmp_path / "originals")
    settings = Settings(data_dir=tmp_path, fetch_allow_networks=["127.0.0.1/32"])
    text = b"hello, inflated world\n" * 20_000

    with local_server({"/doc": _encoded(encode(text), encoding)}) as site:
        stored, _ = await fetch.fetch_to_storage(site.url("/doc"), storage, settings)

    async with storage.local_copy(stored.key) as path:
        assert path.read_bytes() == text


async def test_an_encoding_not_asked_for_is_a_fetch_error(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "originals")
    settings = Settings(data_dir=tmp_path, fetch_allow_networks=["127.0.0.1/32"])

    route = _encoded(b"\x0b\x02\x80hi\x03", "br")
    with local_server({"/br": route}) as site, pytest.raises(FetchError) as caught:
        await fetch.fetch_to_storage(site.url("/br"), storage, settings)

    assert "'br'" in caught.value.message
