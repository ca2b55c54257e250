"""Fixtures for requests shaped like Slack's published samples (tests/payloads/slack_samples.py)."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.security.support import LiveApp, start_live_app


@pytest.fixture
def live_app(standin, sqlite_url) -> Iterator[LiveApp]:
    """The app served in-process (threads) on SQLite, pointed at the stand-in."""
    yield from _served(standin, sqlite_url)


@pytest.fixture
def live_app_on(standin, db_url) -> Iterator[LiveApp]:
    """The same, on each database backend in turn."""
    yield from _served(standin, db_url)


def _served(standin, database_url: str) -> Iterator[LiveApp]:  # type: ignore[no-untyped-def]
    live = start_live_app(standin, database_url)
    yield live
    live.server.stop()
    live.engine.dispose()
