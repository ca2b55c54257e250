"""End to end against the real server process: OAuth installs and per-workspace tokens."""

from __future__ import annotations

import sqlalchemy as sa

from bolt_app import database
from tests.support import install, wait_for


def replies_for(standin, team_id: str):
    return [c for c in standin.calls_for("chat.postMessage") if c.team_id == team_id and c.ok]


def test_two_workspaces_install_and_each_reply_uses_its_own_token(db_url, standin, app_server_factory) -> None:
    # Server databases are migrated explicitly, as in production; SQLite migrates itself.
    database.upgrade(database.create_engine(db_url, pool_size=1))
    server = app_server_factory(db_url)
    first = standin.create_workspace(name="Acme Rockets")
    second = standin.create_workspace(name="Globex")

    for ws in (first, second):
        result = install(server.url, standin, ws.team_id)
        assert result.response.status == 200, result.response.text
        assert ws.name in result.response.text
        assert f"slack://app?team={ws.team_id}" in result.response.text

    standin.clear_calls()
    for ws in (first, second):
        status, _, _ = standin.send_mention(ws, text="hello there")
        assert status == 200

    for ws in (first, second):
        replies = wait_for(lambda ws=ws: replies_for(standin, ws.team_id))
        assert len(replies) == 1, standin.calls
        reply = replies[0]
        assert reply.token_kind == "bot" and reply.team_id == ws.team_id
        assert reply.params["channel"] == ws.default_channel_id
        assert reply.params.get("thread_ts")  # answered in the thread
    # Authorize resolves from the store: no auth.test round-trip per event.
    assert standin.calls_for("auth.test") == []

    engine = database.create_engine(db_url, pool_size=1)
    with engine.connect() as conn:
        teams = set(conn.execute(sa.text("SELECT team_id FROM slack_bots")).scalars())
    engine.dispose()
    assert teams == {first.team_id, second.team_id}


def test_org_wide_install_and_event_from_one_of_its_workspaces(standin, app_server_factory, sqlite_url) -> None:
    server = app_server_factory(sqlite_url)
    org = standin.create_enterprise(name="Initech Grid")
    member = standin.create_workspace(enterprise_id=org.enterprise_id, name="Initech Sales")

    result = install(server.url, standin, member.team_id, org_install=True)
    assert result.response.status == 200, result.response.text
    assert "Initech Grid" in result.response.text

    standin.clear_calls()
    status, _, _ = standin.send_mention(member, text="hi from a grid workspace")
    assert status == 200
    replies = wait_for(lambda: [c for c in standin.calls_for("chat.postMessage") if c.ok])
    assert len(replies) == 1
    assert replies[0].enterprise_id == org.enterprise_id and replies[0].token_kind == "bot"
