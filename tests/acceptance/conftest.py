"""An in-process client for the API, with its embedded workers running."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from docmill.api.app import create_app
from docmill.settings import Settings


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://docmill.test"
        ) as client:
            yield client
