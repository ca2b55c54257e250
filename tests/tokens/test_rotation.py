"""Token rotation: single-flight under concurrency, failure semantics, tokens outside requests.

The stand-in enforces strictly single-use refresh tokens, so any double spend shows up as an
`invalid_refresh_token` and a failed caller.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from slack_bolt import BoltRequest

from bolt_app.app import create_app
from bolt_app.storage import tables
from bolt_app.storage.tables import STATUS_NEEDS_REINSTALL, to_db_time, workspace_key
from bolt_app.tokens.rotation import InstallationNeedsReinstall, TokensTemporarilyUnavailable
from tests.support import install_direct, settings_for


def refresh_calls(standin) -> list:
    return [c for c in standin.calls_for("oauth.v2.access") if c.params.get("grant_type") == "refresh_token"]


def make_due(engine, kind: str = "bot", seconds_left: int = -60) -> None:
    """Make the store believe tokens expire soon (or expired), as the clock would."""
    table = tables.bots if kind == "bot" else tables.installations
    column = f"{kind}_token_expires_at"
    with engine.begin() as conn:
        conn.execute(table.update().values({column: to_db_time(time.time() + seconds_left)}))


def stored(engine, table, column: str, **where):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        query = sa.select(table.c[column])
        for key, value in where.items():
            query = query.where(table.c[key] == value)
        return conn.execute(query).scalar_one()


@pytest.fixture
def app(standin, db_url, engine):
    return create_app(settings_for(standin, db_url, SLACK_USER_SCOPES="search:read"), engine=engine)


def test_concurrent_callers_refresh_once_per_installation(app, standin, engine) -> None:
    workspaces = [standin.create_workspace() for _ in range(3)]
    for ws in workspaces:
        install_direct(app, standin, ws.team_id)
    make_due(engine)
    standin.clear_calls()

    callers = 16
    barrier = threading.Barrier(callers * len(workspaces))

    def fresh_token(ws) -> str:  # type: ignore[no-untyped-def]
        barrier.wait()
        return app.tokens.fresh_bot(workspace_key(None, ws.team_id)).bot_token

    with ThreadPoolExecutor(max_workers=callers * len(workspaces)) as pool:
        futures = [(ws, pool.submit(fresh_token, ws)) for ws in workspaces for _ in range(callers)]
        results = [(ws, f.result(timeout=60)) for ws, f in futures]

    assert len(refresh_calls(standin)) == len(workspaces)
    assert all(call.ok for call in refresh_calls(standin))
    for ws in workspaces:
        tokens = {token for w, token in results if w is ws}
        assert len(tokens) == 1  # every caller got the one new token
        info = standin.token_info(tokens.pop())
        assert info["team_id"] == ws.team_id and info["alive"] and info["expires_at"] > time.time()
    # Every stored refresh token still works (the stand-in would say invalid_refresh_token otherwise).
    for ws in workspaces:
        app.tokens.refresh_bot(workspace_key(None, ws.team_id), rejected_token=app.tokens.read_bot(workspace_key(None, ws.team_id)).bot_token)
    assert all(call.ok for call in refresh_calls(standin))


def test_token_expired_from_slack_refreshes_and_the_reply_runs_once_more(app, standin) -> None:
    ws = standin.create_workspace()
    install_direct(app, standin, ws.team_id)
    standin.expire_tokens(team_id=ws.team_id)  # Slack says expired; the store still thinks it valid
    standin.clear_calls()
    now = time.time()
    mention = {
        "type": "event_callback", "team_id": ws.team_id, "api_app_id": "A1", "event_id": "Ev-expired",
        "event_time": int(now), "authorizations": [{"team_id": ws.team_id, "user_id": ws.bot_user_id, "is_bot": True}],
        "event": {"type": "app_mention", "user": ws.installer_user_id, "text": f"<@{ws.bot_user_id}> hi",
                  "ts": f"{now:.6f}", "event_ts": f"{now:.6f}", "channel": ws.default_channel_id},
    }
    response = app.dispatch(BoltRequest(body=json.dumps(mention), headers={"content-type": "application/json"}))
    assert response.status == 200

    def posts() -> list:
        return [c.error for c in standin.calls_for("chat.postMessage")]

    deadline = time.monotonic() + 10
    while posts() != ["token_expired", None] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert posts() == ["token_expired", None]  # refused, refreshed, posted once with the new token
    assert len(refresh_calls(standin)) == 1


def test_revoked_refresh_token_marks_installation_without_retry_storm(app, standin, engine) -> None:
    broken, healthy = standin.create_workspace(), standin.create_workspace()
    install_direct(app, standin, broken.team_id)
    install_direct(app, standin, healthy.team_id)
    standin.revoke_refresh_tokens(broken.team_id)
    make_due(engine)
    standin.clear_calls()

    for _ in range(10):
        with pytest.raises(InstallationNeedsReinstall):
            app.tokens.fresh_bot(workspace_key(None, broken.team_id))
    assert len(refresh_calls(standin)) == 1  # tried once, then remembered
    assert stored(engine, tables.bots, "status", team_id=broken.team_id) == STATUS_NEEDS_REINSTALL

    assert app.tokens.fresh_bot(workspace_key(None, healthy.team_id)).bot_token
    assert len(refresh_calls(standin)) == 2
    assert stored(engine, tables.bots, "status", team_id=healthy.team_id) == "ok"

    # Reinstalling clears the mark.
    install_direct(app, standin, broken.team_id)
    assert stored(engine, tables.bots, "status", team_id=broken.team_id) == "ok"


def test_transient_slack_errors_are_retried_and_old_token_used_meanwhile(app, standin, engine) -> None:
    ws = standin.create_workspace()
    install_direct(app, standin, ws.team_id)
    key = workspace_key(None, ws.team_id)
    original = app.tokens.read_bot(key).bot_token

    # One 503 then success: retried within the call.
    make_due(engine, seconds_left=600)
    standin.set_failure("oauth.v2.access", status=503, count=1)
    standin.clear_calls()
    assert app.tokens.fresh_bot(key).bot_token != original
    assert len(refresh_calls(standin)) >= 2

    # Slack keeps failing: a token that is due but not expired is still used.
    current = app.tokens.read_bot(key).bot_token
    make_due(engine, seconds_left=600)
    standin.set_failure("oauth.v2.access", error="internal_error", count=20)
    assert app.tokens.fresh_bot(key).bot_token == current

    # ...and once it has expired, the caller is told to come back (Slack retries the event).
    make_due(engine, seconds_left=-60)
    with pytest.raises(TokensTemporarilyUnavailable):
        app.tokens.fresh_bot(key)
    standin.clear_failures()
    assert app.tokens.fresh_bot(key).bot_token not in (original, current)


def test_bot_refresh_keeps_user_token_and_user_refresh_keeps_bot_token(app, standin, engine) -> None:
    ws = standin.create_workspace()
    other_user = standin.add_user(ws.team_id)
    install_direct(app, standin, ws.team_id)
    install_direct(app, standin, ws.team_id, user_id=other_user)
    key = workspace_key(None, ws.team_id)
    installer = ws.installer_user_id
    user_token = app.tokens.read_user(key, installer).user_token
    assert user_token

    make_due(engine, "bot")
    bot_token = app.tokens.fresh_bot(key).bot_token
    assert app.tokens.read_user(key, installer).user_token == user_token
    assert app.tokens.read_user(key, other_user).user_token  # another user's token survives too
    # Every installation row carries the new bot token.
    with engine.connect() as conn:
        copies = set(conn.execute(sa.select(tables.installations.c.bot_token)).scalars())
    assert copies == {bot_token}

    make_due(engine, "user")
    new_user_token = app.tokens.fresh_user(key, installer).user_token
    assert new_user_token and new_user_token != user_token
    assert app.tokens.read_bot(key).bot_token == bot_token
    assert standin.token_info(new_user_token)["kind"] == "user"


def test_refresh_expiring_and_background_client(app, standin, engine) -> None:
    first, second = standin.create_workspace(), standin.create_workspace()
    install_direct(app, standin, first.team_id)
    install_direct(app, standin, second.team_id)
    make_due(engine, "bot", seconds_left=30 * 60)
    standin.clear_calls()

    lines: list[str] = []
    summary = app.tokens.refresh_expiring(60 * 60, lambda label, outcome: lines.append(f"{label}: {outcome}"))
    assert summary.refreshed >= 2 and summary.failed == 0
    assert len([line for line in lines if line.startswith("bot")]) == 2
    # Nothing is due any more: a second run refreshes nothing.
    assert app.tokens.refresh_expiring(60 * 60).refreshed == 0

    client = app.tokens.client_for(None, first.team_id)
    assert client.chat_postMessage(channel=first.default_channel_id, text="from a job")["ok"]
    with pytest.raises(LookupError):
        app.tokens.client_for(None, "T-NOT-INSTALLED")
