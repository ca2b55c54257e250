"""Fixtures for feature tests: a migrated SQLite database for logic that is not backend-specific."""

from __future__ import annotations

from typing import Iterator

import pytest
import sqlalchemy as sa

from bolt_app import database


@pytest.fixture
def sqlite_engine(sqlite_url) -> Iterator[sa.engine.Engine]:
    eng = database.create_engine(sqlite_url, pool_size=5)
    database.upgrade(eng)
    yield eng
    eng.dispose()
