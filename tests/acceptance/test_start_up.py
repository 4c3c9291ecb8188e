"""What an app does once at start-up, before its first request."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from docmill.api.app import create_app
from docmill.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """The test process's heap as collectable after the test as before."""
    gc.unfreeze()
    yield
    gc.unfreeze()


async def test_a_long_running_app_freezes_what_start_up_made(
    settings: Settings, unfrozen: None
) -> None:
    app = create_app(settings, long_running=True)

    async with app.router.lifespan_context(app):
        frozen = gc.get_freeze_count()

    assert frozen > 10_000


async def test_an_app_of_the_tests_freezes_nothing(
    settings: Settings, unfrozen: None
) -> None:
    app = create_app(settings)

    async with app.router.lifespan_context(app):
        frozen = gc.get_freeze_count()

    assert frozen == 0
