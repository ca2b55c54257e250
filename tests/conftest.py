"""Shared fixtures: a fresh database per test on every reachable backend, the Slack stand-in,
settings pointing at it, in-process apps and real server processes.

Database tests run on SQLite always and on PostgreSQL and MariaDB when reachable
(TEST_POSTGRES_URL, TEST_MYSQL_URL; defaults are the local services). With
REQUIRE_DB_BACKENDS=postgresql,mariadb (as .ci/run sets it) an unreachable backend fails the
run instead of being skipped.
"""

from __future__ import annotations

import os
from typing import Iterator

import pytest
import sqlalchemy as sa

from bolt_app import database
from bolt_app.settings import mask_url_password
from slack_standin import SlackStandIn
from slack_standin.harness import SERVER_URLS, scratch_database
from bolt_app.storage import crypto
from tests.support import (
    CLIENT_ID,
    CLIENT_SECRET,
    SIGNING_SECRET,
    TEST_ENCRYPTION_KEY,
    AppServer,
    settings_for,
)

# Engines the tests build directly (not through create_app) encrypt token columns with the test key.
crypto.configure(crypto.Keyring([TEST_ENCRYPTION_KEY]))

BACKENDS = ("sqlite", "postgresql", "mariadb")
REQUIRED = {b.strip() for b in os.environ.get("REQUIRE_DB_BACKENDS", "").split(",") if b.strip()}
_reachability: dict[str, str | None] = {}
_skipped: dict[str, int] = {}


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    # A misspelt name would require nothing, and the backend would be skipped after all.
    unknown = sorted(REQUIRED - set(BACKENDS))
    if unknown:
        raise pytest.UsageError(
            f"REQUIRE_DB_BACKENDS names unknown backend(s): {', '.join(unknown)}. "
            f"Use {', '.join(BACKENDS)} (e.g. REQUIRE_DB_BACKENDS=postgresql,mariadb)."
        )


def _unreachable_reason(backend: str) -> str | None:
    """None when the server answers, else why not (checked once per run)."""
    if backend not in _reachability:
        try:
            engine = sa.create_engine(SERVER_URLS[backend], connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            engine.dispose()
            _reachability[backend] = None
        except Exception as error:  # any failure means unreachable
            _reachability[backend] = f"{backend} not reachable at {mask_url_password(SERVER_URLS[backend])}: {type(error).__name__}"
    return _reachability[backend]


def _create_database(backend: str, tmp_path) -> tuple[str, callable]:  # type: ignore[valid-type]
    """A brand-new empty database; returns its URL and a function that drops it."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}", lambda: None
    reason = _unreachable_reason(backend)
    if reason is not None:
        if backend in REQUIRED:
            pytest.fail(f"{reason} (required by REQUIRE_DB_BACKENDS)")
        _skipped[backend] = _skipped.get(backend, 0) + 1
        pytest.skip(reason)
    return scratch_database(backend, "t")


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> Iterator[str]:
    """An empty database on each backend in turn (SQLite always; servers when reachable)."""
    url, drop = _create_database(request.param, tmp_path)
    yield url
    drop()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'app.db'}"


@pytest.fixture
def engine(db_url) -> Iterator[sa.engine.Engine]:
    """A migrated database on each backend."""
    eng = database.create_engine(db_url, pool_size=20)
    database.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    with SlackStandIn(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, signing_secret=SIGNING_SECRET) as s:
        yield s


@pytest.fixture
def app_server_factory(standin, tmp_path) -> Iterator[callable]:  # type: ignore[valid-type]
    """Start real `python main.py` server processes against the stand-in; stopped after the test."""
    servers: list[AppServer] = []

    def start(database_url: str, **env: str) -> AppServer:
        server = AppServer(standin=standin, database_url=database_url, workdir=tmp_path, extra_env=env)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def settings(standin, sqlite_url):
    return settings_for(standin, sqlite_url)


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    for backend, count in sorted(_skipped.items()):
        terminalreporter.write_line(
            f"SKIPPED on {backend}: {count} database test(s) — {_reachability.get(backend)}. "
            f"Start the server (see README) to run them.",
            yellow=True,
        )
