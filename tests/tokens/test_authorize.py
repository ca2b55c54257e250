"""The authorize cache: busy workspaces are re-read ahead of expiry, off the request thread."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from slack_bolt import BoltContext
from slack_bolt.authorization import AuthorizeResult

from bolt_app import database
from bolt_app.app import create_app
from bolt_app.storage.tables import workspace_key
from bolt_app.tokens.authorize import AuthorizeCache
from bolt_app.tokens.installed import WorkspaceNotInstalled

from ..support import install_direct

KEY = ("T1", None)


def _result(token: str) -> AuthorizeResult:
    return AuthorizeResult(enterprise_id=None, team_id="T1", bot_token=token, bot_id="B1", bot_user_id="U1")


def test_entry_is_offered_for_refresh_once_late_in_its_ttl() -> None:
    cache = AuthorizeCache(ttl_seconds=1.0)
    cache.put(KEY, _result("a"), max_seconds=60)
    result, refresh = cache.get_or_claim_refresh(KEY)
    assert result.bot_token == "a" and not refresh
    time.sleep(0.92)
    result, refresh = cache.get_or_claim_refresh(KEY)
    assert result.bot_token == "a" and refresh  # still served while someone refreshes it
    assert cache.get_or_claim_refresh(KEY) == (result, False)  # only one refresher at a time
    cache.put(KEY, _result("b"), max_seconds=60)
    assert cache.get_or_claim_refresh(KEY)[0].bot_token == "b"
    # Not refreshed: it still expires at its TTL.
    cache.put(KEY, _result("c"), max_seconds=0.3)
    time.sleep(0.35)
    assert cache.get_or_claim_refresh(KEY) == (None, False)


def test_an_expired_entry_or_one_due_for_refresh_is_not_served() -> None:
    cache = AuthorizeCache(ttl_seconds=0.2)
    cache.put(KEY, _result("a"), max_seconds=60)
    due = ("T2", None)
    cache.put(due, _result("due"), max_seconds=0)  # its token is inside the refresh window
    assert cache.get(due) is None
    assert cache.get(KEY).bot_token == "a"
    time.sleep(0.25)
    assert cache.get(KEY) is None  # tokens are not served past the TTL
    assert len(cache) == 0  # expired entries are dropped when looked up


def test_a_result_read_before_an_invalidation_is_not_stored_after_it() -> None:
    cache = AuthorizeCache()
    generation = cache.generation
    cache.invalidate_workspace("T1")  # e.g. uninstalled while the read was in flight
    cache.put(KEY, _result("stale"), max_seconds=60, generation=generation)
    assert cache.get(KEY) is None
    cache.put(KEY, _result("fresh"), max_seconds=60, generation=cache.generation)
    assert cache.get(KEY).bot_token == "fresh"


def test_request_threads_never_wait_on_the_refresh_read(settings, standin) -> None:
    database.upgrade(database.create_engine(settings.database_url, pool_size=1))
    app = create_app(settings)
    ws = standin.create_workspace(name="Busy")
    install_direct(app, standin, ws.team_id)
    cache = app.authorize_cache
    cache.ttl_seconds = 1.0
    queries_by_thread: dict[str, int] = {}

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        name = threading.current_thread().name
        queries_by_thread[name] = queries_by_thread.get(name, 0) + 1

    def authorize():  # type: ignore[no-untyped-def]
        return app._authorize(context=BoltContext(), enterprise_id=None, team_id=ws.team_id, user_id=None)

    sa.event.listen(app.engine, "before_cursor_execute", count)
    try:
        assert authorize().bot_token  # cold: this thread reads
        me = threading.current_thread().name
        reads_when_cold = queries_by_thread.get(me, 0)
        assert reads_when_cold >= 1
        deadline = time.monotonic() + 3
        # Keep the workspace busy across several refresh points: every request is a cache hit.
        while time.monotonic() < deadline:
            assert authorize().bot_token
            time.sleep(0.02)
        assert queries_by_thread.get(me, 0) == reads_when_cold, queries_by_thread
        background = {n: c for n, c in queries_by_thread.items() if n.startswith("authorize-refresh")}
        assert background and sum(background.values()) >= 2, queries_by_thread

        # Uninstalled by another process (this cache is not told): the next refresh drops the entry.
        other = database.create_engine(settings.database_url, pool_size=1)
        with other.begin() as conn:
            conn.execute(sa.text("DELETE FROM slack_bots"))
            conn.execute(sa.text("DELETE FROM slack_installations"))
        def installed() -> bool:
            try:
                return authorize() is not None
            except WorkspaceNotInstalled:
                return False

        deadline = time.monotonic() + 3
        while installed() and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(WorkspaceNotInstalled):
            authorize()
        assert cache.get((workspace_key(None, ws.team_id), None)) is None
    finally:
        sa.event.remove(app.engine, "before_cursor_execute", count)
