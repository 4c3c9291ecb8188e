"""
Fetching submitted URLs, and the address guard every outgoing request uses.

A URL a caller gives must not become a way into docmill's own network
(SSRF). The guard resolves the host name, refuses it if any address is
private, loopback, link-local (which includes cloud metadata at
169.254.169.254), shared, reserved or multicast, unless an allow-listed
network (``DOCMILL_FETCH_ALLOW_NETWORKS``) contains it, and then connects to
the address it checked, not to a second lookup of the name, so a DNS answer
that changes between check and connect (rebinding) gains nothing. Redirects
are followed by hand, and every hop passes the same check. An IPv6 address
that carries an IPv4 one (NAT64, 6to4, Teredo, IPv4-mapped or -compatible)
is judged by the IPv4 address a gateway would deliver it to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import zlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx

from docmill.exceptions import (
    FetchError,
    ForbiddenAddress,
    LimitExceeded,
    UploadTimeout,
)
from docmill.settings import Settings
from docmill.storage import Storage, StoredOriginal
from docmill.streams import put_stream

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
USER_AGENT = "docmill"
# Only encodings inflated here, a piece at a time: httpx's own decoders
# inflate each network chunk whole, and 1 MB of gzip arriving in a few chunks
# grew a worker by half a gigabyte before the size limit could say no.
ACCEPT_ENCODING = "gzip, deflate"
INFLATED_PIECE_BYTES = 64 * 1024
# A body that inflates past both is refused as a bomb before it reaches the
# size limit (512 MiB by default, all of it written to disk first). Text and
# office documents shrink 3 to 20 times; deflate's own ceiling is about 1030.
# The floor lets a small, very repetitive file through: 440 KB of one line
# repeated gzips 300 times over.
MAX_INFLATION_RATIO = 100
INFLATION_FLOOR_BYTES = 16 * 1024 * 1024


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (tests replace this function)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True)
class PinnedRequest:
    """A request aimed at a checked address, naming the host only in headers."""

    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, Any] = field(default_factory=dict)


class AddressGuard:
    """
    Decides which addresses outgoing requests may reach.

    Args:
        allow: networks (CIDR) permitted although not public.
    """

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.allow = [ipaddress.ip_network(net, strict=False) for net in allow]

    def permits(self, address: IPAddress) -> bool:
        if self._allowed(address):
            return True
        if isinstance(address, ipaddress.IPv6Address):
            if address in _LOCAL_NAT64:
                return False
            embedded = _embedded_ipv4(address)
            if embedded:
                return all(self._public(v4) or self._allowed(v4) for v4 in embedded)
        return self._public(address)

    def _allowed(self, address: IPAddress) -> bool:
        return any(address in network for network in self.allow)

    @staticmethod
    def _public(address: IPAddress) -> bool:
        return address.is_global and not address.is_multicast

    async def pin(self, url: httpx.URL) -> PinnedRequest:
        """
        Check ``url``'s host and aim the request at the checked address.

        Raises:
            FetchError: not http(s), no host, or the name does not resolve.
            ForbiddenAddress: an address of the host is not permitted.
        """
        if url.scheme not in ("http", "https") or not url.host:
            raise FetchError(f"{str(url)!r} is not an http(s) URL with a host")
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                found = await resolve(host, port)
            except OSError as exc:
                raise FetchError(
                    f"{host!r} could not be resolved: {exc}", retryable=True
                ) from exc
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in found]
        if not addresses:
            raise FetchError(f"{host!r} resolves to no address", retryable=True)
        for address in addresses:
            if not self.permits(address):
                raise ForbiddenAddress(host, str(address))
        chosen = addresses[0]
        headers = {"Host": url.netloc.decode("ascii"), "User-Agent": USER_AGENT}
        extensions: dict[str, Any] = {}
        if url.scheme == "https":
            extensions["sni_hostname"] = host
        return PinnedRequest(url.copy_with(host=str(chosen)), headers, extensions)


# RFC 8215's local-use NAT64 prefix: the operator picks its length, so where
# the IPv4 address sits inside is unknown here, and nothing in it is global.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """
    The IPv4 addresses an IPv6 address carries and would be routed to.

    Python's ``is_global`` judges NAT64, 6to4 and IPv4-compatible addresses
    by their IPv6 prefix alone, so ``[64:ff9b::a9fe:a9fe]`` looked public
    while a NAT64 gateway delivers it to 169.254.169.254.
    """
    if address.ipv4_mapped:
        return [address.ipv4_mapped]
    if address.sixtofour:
        return [address.sixtofour]
    if address.teredo:
        return list(address.teredo)
    low = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64:
        return [low]
    # :: and ::1 are themselves (unspecified, loopback), not IPv4-compatible.
    if address in _V4_COMPATIBLE and int(address) > 1:
        return [low]
    return []


def guard_from(settings: Settings) -> AddressGuard:
    return AddressGuard(settings.fetch_allow_networks)


_FILENAME = re.compile(r"filename\*?=(?:UTF-8'')?\"?([^\";]+)\"?", re.IGNORECASE)


def _filename(response: httpx.Response, url: httpx.URL) -> str | None:
    disposition = response.headers.get("content-disposition", "")
    if match := _FILENAME.search(disposition):
        return unquote(match.group(1)).strip() or None
    last = unquote(url.path.rsplit("/", 1)[-1])
    return last or None


async def fetch_to_storage(
    url: str, storage: Storage, settings: Settings
) -> tuple[StoredOriginal, str | None]:
    """
    Download ``url`` into ``storage``, streamed, within the fetch limits.

    Returns the stored original and a file name from the response, if any.

    Raises:
        FetchError: refused address, bad status, too many redirects, timeout.
        TooLarge: the body passes ``max_upload_bytes``.
    """
    guard = guard_from(settings)
    try:
        async with asyncio.timeout(settings.fetch_timeout_seconds):
            return await _follow(httpx.URL(url), storage, settings, guard)
    except TimeoutError as exc:
        raise FetchError(
            f"fetching {url!r} took longer than {settings.fetch_timeout_seconds}s",
            retryable=True,
        ) from exc
    except httpx.InvalidURL as exc:
        raise FetchError(f"{url!r} is not a valid URL: {exc}") from exc
    except UploadTimeout as exc:
        # DOCMILL_UPLOAD_TIMEOUT_SECONDS below the fetch timeout: still a
        # fetch that took too long, not a storage fault.
        raise FetchError(f"fetching {url!r}: {exc}", retryable=True) from exc


async def _follow(
    url: httpx.URL, storage: Storage, settings: Settings, guard: AddressGuard
) -> tuple[StoredOriginal, str | None]:
    submitted = url
    # trust_env off: a proxy from the environment would connect on our behalf
    # to addresses the guard never saw.
    async with httpx.AsyncClient(trust_env=False, follow_redirects=False) as client:
        for _hop in range(settings.fetch_max_redirects + 1):
            try:
                pinned = await guard.pin(url)
            except FetchError as exc:
                if url != submitted:
                    _name_redirect(exc, submitted, url)
                raise
            try:
                async with client.stream(
                    "GET",
                    pinned.url,
                    headers=pinned.headers | {"Accept-Encoding": ACCEPT_ENCODING},
                    extensions=pinned.extensions,
                ) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = url.join(response.headers["location"])
                        continue
                    if response.status_code >= 400:
                        raise FetchError(
                            f"{_named(submitted, url)} answered HTTP "
                            f"{response.status_code}",
                            retryable=response.status_code >= 500
                            or response.status_code == 429,
                        )
                    body = decoded_body(
                        response, _named(submitted, url), settings.max_upload_bytes
                    )
                    stored = await put_stream(storage, body, settings.max_upload_bytes)
                    return stored, _filename(response, url)
            except httpx.HTTPError as exc:
                raise FetchError(
                    f"fetching {_named(submitted, url)} failed: "
                    f"{type(exc).__name__}: {exc}",
                    retryable=True,
                ) from exc
    most = settings.fetch_max_redirects
    if most == 0:
        raise FetchError(
            f"{str(submitted)!r} redirects (to {str(url)!r}), and this server "
            "follows no redirects"
        )
    raise FetchError(
        f"more than {most} redirect{'s' if most > 1 else ''} from "
        f"{str(submitted)!r} (the last to {str(url)!r})"
    )


def decoded_body(
    response: httpx.Response, named: str, max_bytes: int
) -> AsyncIterator[bytes]:
    """
    ``response``'s body with its Content-Encoding undone, in pieces of at
    most ``INFLATED_PIECE_BYTES`` however far the bytes inflate.

    Raises:
        FetchError: an encoding other than those asked for (br, zstd: their
            decoders here could not be bounded the same way).
        LimitExceeded: the body inflates past ``MAX_INFLATION_RATIO`` times
            its encoded size and past ``INFLATION_FLOOR_BYTES``.
    """
    body = response.aiter_raw()
    header = response.headers.get("content-encoding", "")
    encodings = [word.strip().lower() for word in header.split(",") if word.strip()]
    # The last encoding applied is the first to undo.
    for encoding in reversed(encodings):
        if encoding in ("gzip", "x-gzip", "deflate"):
            body = _inflated(body, encoding, max_bytes, named)
        elif encoding != "identity":
            raise FetchError(
                f"{named} answered with Content-Encoding {encoding!r}; "
                f"docmill asks for {ACCEPT_ENCODING!r} only"
            )
    return body


async def _inflated(
    chunks: AsyncIterator[bytes], encoding: str, max_bytes: int, named: str
) -> AsyncIterator[bytes]:
    # A gzip header for gzip; deflate is zlib-wrapped by the standard, raw
    # from some servers, so its first byte decides (as httpx does on error).
    inflater: Any = None
    total = encoded = 0
    async for chunk in chunks:
        encoded += len(chunk)
        if inflater is None:
            inflater = zlib.decompressobj(_window_bits(encoding, chunk))
        data = chunk
        while True:
            try:
                piece = inflater.decompress(data, INFLATED_PIECE_BYTES)
            except zlib.error as exc:
                raise FetchError(f"the {encoding} body is damaged: {exc}") from exc
            total += len(piece)
            if total > INFLATION_FLOOR_BYTES and total > MAX_INFLATION_RATIO * encoded:
                raise LimitExceeded(
                    f"{named} sent a {encoding} body that inflated to more "
                    f"than {MAX_INFLATION_RATIO} times its size ({total} bytes "
                    f"from {encoded}), refused as a decompression bomb"
                )
            if total > max_bytes:
                # The size limit counts inflated bytes; stop inflating here
                # rather than hand the store more than it will take.
                yield piece[: max_bytes + 1 - (total - len(piece))]
                return
            if piece:
                yield piece
            data = inflater.unconsumed_tail
            if inflater.eof and inflater.unused_data.startswith(b"\x1f\x8b"):
                # Concatenated gzip members, one after another (what follows
                # a stream otherwise is padding, ignored as httpx did).
                data = inflater.unused_data
                inflater = zlib.decompressobj(_window_bits(encoding, data))
            elif not data and len(piece) < INFLATED_PIECE_BYTES:
                break
    if inflater is not None:
        tail = inflater.flush()
        if tail:
            yield tail


def _window_bits(encoding: str, first: bytes) -> int:
    if encoding != "deflate":
        return 16 + zlib.MAX_WBITS
    zlib_wrapped = (
        len(first) >= 2
        and (first[0] & 0x0F) == 8
        and ((first[0] << 8) | first[1]) % 31 == 0
    )
    return zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS


# Errors name the URL the caller submitted, which is the one they know; the
# address a redirect led to follows, since that is where the fault is.
def _named(submitted: httpx.URL, url: httpx.URL) -> str:
    if url == submitted:
        return repr(str(url))
    return f"{str(submitted)!r} (redirected to {str(url)!r})"


def _name_redirect(exc: FetchError, submitted: httpx.URL, url: httpx.URL) -> None:
    # The guard's errors name only the host it refused; the class (and so
    # the error code) stays, the message gains where the redirect started.
    exc.message = f"{exc.message}; {str(submitted)!r} redirected to {str(url)!r}"
    exc.args = (exc.message,)
