"""Fixtures of the security suite (the shared ones live in tests/conftest.py)."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.security.support import LiveApp, start_live_app


@pytest.fixture
def live_app(standin, db_url) -> Iterator[LiveApp]:
    """The app served in-process (threads) on each database backend, pointed at the stand-in."""
    live = start_live_app(standin, db_url, SLACK_USER_SCOPES="search:read")
    yield live
    live.server.stop()
    live.engine.dispose()
