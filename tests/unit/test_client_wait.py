"""docmill.client's wait, against a server that goes away and comes back."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from docmill import client as client_module
from docmill.client import ApiError, AsyncClient, Client
from tests.support import api_document

# One answer (or failure) per poll, in order.
Step = int | str | type[httpx.TransportError]


class Clock:
    """time.monotonic and time.sleep for the client: sleeping moves it on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    # The modules themselves (the client calls time.sleep, asyncio.sleep),
    # put back by monkeypatch after each test.
    monkeypatch.setattr(client_module.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(client_module.time, "sleep", fake.sleep)
    monkeypatch.setattr(client_module.asyncio, "sleep", fake.async_sleep)
    return fake


def server(steps: list[Step]) -> Callable[[httpx.Request], httpx.Response]:
    """
    A server whose answers to the polls are ``steps``: a status word is the
    document in that status, a number an error answer, an exception class
    the server out of reach.
    """
    remaining: Iterator[Step] = iter(steps)

    def answer(request: httpx.Request) -> httpx.Response:
        step = next(remaining)
        if isinstance(step, str):
            return httpx.Response(200, json=api_document(step))
        if isinstance(step, int):
            problem = {"type": "about:blank", "detail": f"status {step}"}
            return httpx.Response(step, content=json.dumps(problem).encode())
        raise step("gone", request=request)

    return answer


def waited(steps: list[Step], **options: Any) -> str:
    transport = httpx.MockTransport(server(steps))
    with Client("http://docmill.test", transport=transport) as client:
        return client.wait("doc-1", **options).status


def test_wait_rides_out_a_server_that_goes_away_and_comes_back(clock: Clock) -> None:
    steps: list[Step] = [
        "processing",
        httpx.ConnectError,
        httpx.ReadError,
        503,
        502,
        504,
        "processing",
        "completed",
    ]

    assert waited(steps) == "completed"
    # Doubling pauses while it is away, the poll interval once it is back.
    assert clock.slept == [0.5, 0.5, 1.0, 2.0, 4.0, 5.0, 0.5]


def test_wait_gives_up_after_reconnect_seconds(clock: Clock) -> None:
    with pytest.raises(httpx.ConnectError):
        waited(["processing"] + [httpx.ConnectError] * 100, reconnect_seconds=10)

    assert (clock.slept[1:], clock.now) == ([0.5, 1.0, 2.0, 4.0, 2.5], 1010.5)


def test_wait_without_reconnect_raises_at_once(clock: Clock) -> None:
    with pytest.raises(ApiError) as raised:
        waited([503], reconnect_seconds=0)

    assert (raised.value.status, clock.slept) == (503, [])


@pytest.mark.parametrize("status", [pytest.param(s, id=str(s)) for s in (500, 404)])
def test_wait_raises_other_errors_at_once(clock: Clock, status: int) -> None:
    with pytest.raises(ApiError) as raised:
        waited([status])

    assert (raised.value.status, clock.slept) == (status, [])


def test_an_outage_ends_when_the_server_answers(clock: Clock) -> None:
    """Each outage gets reconnect_seconds of its own, from its first failure."""
    away = [httpx.ConnectError] * 3
    steps: list[Step] = [*away, "processing", *away, "completed"]

    assert waited(steps, reconnect_seconds=3) == "completed"


@pytest.mark.anyio
async def test_async_wait_rides_out_a_server_that_goes_away(clock: Clock) -> None:
    steps: list[Step] = ["processing", httpx.ConnectError, 503, "completed"]
    transport = httpx.MockTransport(server(steps))

    async with AsyncClient("http://docmill.test", transport=transport) as client:
        done = await client.wait("doc-1")

    assert (done.status, clock.slept) == ("completed", [0.5, 0.5, 1.0])
