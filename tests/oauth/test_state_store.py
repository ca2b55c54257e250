"""The OAuth state store on every backend: a state works once, only before it expires, and a
database failure counts as "not valid". The last test reaches the store through the whole flow:
the second use of a state comes with a fresh code and the right cookie, so nothing but the
store's single use refuses it.
"""

from __future__ import annotations

import copy
import logging
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from slack_bolt.request import BoltRequest

from bolt_app import database
from bolt_app.app import create_app
from bolt_app.storage import state_store as state_store_module
from bolt_app.storage import tables
from bolt_app.storage.state_store import SWEEP_EVERY, OAuthStateStore
from bolt_app.storage.tables import to_db_time, utc_now
from tests.oauth.test_state_cookie import Jar, finish, installed_teams, start
from tests.support import query_of, settings_for


@pytest.fixture
def store(engine) -> OAuthStateStore:  # type: ignore[no-untyped-def]
    return OAuthStateStore(expiration_seconds=600, engine=engine)


def states(engine) -> dict[str, object]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(tables.oauth_states.c.state, tables.oauth_states.c.expire_at)).all())


def add_state(engine, state: str, expire_at) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(tables.oauth_states.insert().values(state=state, expire_at=expire_at))


def no_sweep(monkeypatch, value: int = 1) -> list[int]:  # type: ignore[no-untyped-def]
    """Make the sweep lottery return `value` (0: sweep); records the bounds it was asked for."""
    asked: list[int] = []

    def randbelow(bound: int) -> int:
        asked.append(bound)
        return value

    monkeypatch.setattr(state_store_module.secrets, "randbelow", randbelow)
    return asked


def test_a_state_is_valid_once(store, engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    no_sweep(monkeypatch)
    state = store.issue()
    assert len(state) == 43 and state.replace("-", "").replace("_", "").isalnum()  # 256 bits, url-safe base64
    assert list(states(engine)) == [state]
    assert store.consume(state) is True
    assert states(engine) == {}
    assert store.consume(state) is False


def test_states_are_unpredictable_and_independent(store, engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    no_sweep(monkeypatch)
    issued = [store.issue() for _ in range(20)]
    assert len(set(issued)) == 20
    assert sorted(states(engine)) == sorted(issued)
    assert store.consume(issued[5]) is True
    # Consuming one leaves the others valid.
    assert sorted(states(engine)) == sorted(issued[:5] + issued[6:])
    assert all(store.consume(s) for s in issued[:5] + issued[6:])


def test_a_state_expires(engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    no_sweep(monkeypatch)
    store = OAuthStateStore(expiration_seconds=300, engine=engine)
    before = utc_now()
    state = store.issue()
    expire_at = states(engine)[state]
    # Expires expiration_seconds from now (the column keeps whole seconds on MariaDB).
    assert before + timedelta(seconds=298) <= expire_at <= utc_now() + timedelta(seconds=301)

    # Exactly at its expiry time it is no longer valid; a moment before, it still is.
    monkeypatch.setattr(state_store_module, "utc_now", lambda: expire_at)
    assert store.consume(state) is False
    monkeypatch.setattr(state_store_module, "utc_now", lambda: expire_at - timedelta(seconds=1))
    assert store.consume(state) is True


def test_expired_states_are_swept_on_the_lottery_only(store, engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    now = utc_now().replace(microsecond=0)
    monkeypatch.setattr(state_store_module, "utc_now", lambda: now)
    add_state(engine, "expired-long-ago", now - timedelta(hours=1))
    add_state(engine, "expires-right-now", now)
    add_state(engine, "still-valid", now + timedelta(seconds=1))

    asked = no_sweep(monkeypatch, value=1)
    kept = store.issue()
    assert asked == [SWEEP_EVERY] and SWEEP_EVERY == 50
    assert sorted(states(engine)) == sorted(["expired-long-ago", "expires-right-now", "still-valid", kept])

    no_sweep(monkeypatch, value=0)
    swept = store.issue()
    assert sorted(states(engine)) == sorted(["still-valid", kept, swept])


@pytest.mark.parametrize("state", [None, ""])
def test_an_empty_state_is_never_valid(store, engine, state) -> None:  # type: ignore[no-untyped-def]
    add_state(engine, "", to_db_time(utc_now().timestamp() + 600))
    assert store.consume(state) is False
    assert list(states(engine)) == [""]


def test_overlong_states_are_refused_before_the_database(sqlite_url) -> None:  # type: ignore[no-untyped-def]
    # SQLite does not enforce the column's length: rows of any length can be put there directly.
    engine = database.create_engine(sqlite_url, pool_size=1)
    database.upgrade(engine)
    store = OAuthStateStore(expiration_seconds=600, engine=engine)
    valid_until = to_db_time(utc_now().timestamp() + 600)
    for length in (200, 201, 5000):
        add_state(engine, "s" * length, valid_until)
    assert store.consume("s" * 201) is False
    assert store.consume("s" * 5000) is False
    assert store.consume("s" * 200) is True
    assert sorted(len(s) for s in states(engine)) == [201, 5000]
    engine.dispose()


def test_a_database_failure_means_not_valid(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    engine = database.create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}", pool_size=1)
    store = OAuthStateStore(expiration_seconds=600, engine=engine)
    with caplog.at_level(logging.WARNING):
        assert store.consume("a-state-that-cannot-be-looked-up") is False
    records = [r for r in caplog.records if r.name == "bolt_app.storage.state_store"]
    assert [r.getMessage() for r in records] == ["OAuth state lookup failed: OperationalError"]
    assert records[0].levelno == logging.WARNING
    engine.dispose()


def test_a_logger_can_be_given(engine) -> None:  # type: ignore[no-untyped-def]
    mine = logging.getLogger("tests.state_store")
    assert OAuthStateStore(expiration_seconds=60, engine=engine, logger=mine).logger is mine
    default = OAuthStateStore(expiration_seconds=60, engine=engine).logger
    assert default is logging.getLogger("bolt_app.storage.state_store")
    store = OAuthStateStore(expiration_seconds=60, engine=engine)
    assert store.expiration_seconds == 60 and store.engine is engine
    assert store.oauth_states is tables.oauth_states and store.metadata is tables.metadata


def test_the_schema_belongs_to_the_migrations(store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotImplementedError, match=r"^The schema is managed by Alembic: run `python main.py db upgrade`\.$"):
        store.create_tables()


# --------------------------------------------------------------------------- through the flow


def test_a_state_is_refused_the_second_time_even_with_a_fresh_code_and_its_cookie(standin, sqlite_url) -> None:  # type: ignore[no-untyped-def]
    engine = database.create_engine(sqlite_url, pool_size=5)
    database.upgrade(engine)
    settings = settings_for(standin, sqlite_url, SLACK_REDIRECT_URI="http://127.0.0.1:9/slack/oauth_redirect")
    flow = create_app(settings, engine=engine).oauth_flow
    first, second = standin.create_workspace(name="First"), standin.create_workspace(name="Second")

    jar = Jar()
    authorize_url = start(flow, jar)
    state = query_of(authorize_url)["state"]
    cookie_before_use = copy.deepcopy(jar)
    assert finish(flow, jar, standin.approve(authorize_url, team_id=first.team_id)).status == 200

    # The same state again: a new code Slack would accept, and the cookie the browser had before
    # the first callback (so the browser check passes and "already used" is not what stops it).
    again = standin.approve(authorize_url, team_id=second.team_id)
    assert query_of(again)["state"] == state and query_of(again)["code"]
    query = urlsplit(again).query
    request = BoltRequest(body="", query=query, headers=cookie_before_use.headers())
    assert flow.settings.state_utils.is_valid_browser(state, request.headers)
    assert not flow.settings.state_utils.was_used(state, request.headers)
    response = flow.handle_callback(request)
    assert response.status == 401 and "expired" in response.body.lower(), response.body[:300]
    assert installed_teams(sqlite_url) == [first.team_id]
    # The second code was never exchanged: the state was refused first.
    assert len(standin.calls_for("oauth.v2.access")) == 1
    engine.dispose()
