"""An in-process client for the API, with its embedded workers running."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from docmill.api.app import create_app
from docmill.settings import Settings
from tests.support import app_client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(settings) as client:
        yield client


@pytest.fixture
async def make_client(
    settings: Settings,
) -> AsyncIterator[Callable[..., Awaitable[httpx.AsyncClient]]]:
    """Build clients for apps whose settings differ from ``settings``."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**changes: Any) -> httpx.AsyncClient:
            app = create_app(settings.model_copy(update=changes))
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://docmill.test"
            )
            client.app = app  # type: ignore[attr-defined]
            return await stack.enter_async_context(client)

        yield make
