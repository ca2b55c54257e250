"""50 people vote on one poll at the same moment, through the real server (two gunicorn worker
processes), on SQLite, PostgreSQL and MariaDB: 50 votes stored, and the message Slack ends with
(the last chat.update it applied) shows all 50 — also while Slack answers chat.update with 429 +
Retry-After."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from bolt_app import database
from bolt_app.features.polls.tables import poll_votes
from tests.e2e.test_polls import Calls, post_poll_with_command, rows
from tests.listeners import payloads
from tests.support import install, wait_for

VOTERS = 50


def footer(params_or_message: dict) -> str:
    return payloads.all_text(params_or_message["blocks"])


def quiet_for(standin, ts: str, seconds: float) -> bool:
    """No chat.update (applied or refused) for this message in the last `seconds`."""
    updates = [c for c in standin.calls_for("chat.update") if c.params.get("ts") == ts]
    return bool(updates) and time.time() - updates[-1].at >= seconds


def vote_all_at_once(standin, ws, users: list[str], poll_id: str, ts: str) -> None:
    clicks = [payloads.vote(ws.team_id, u, poll_id, i % 2, ws.default_channel_id, ts) for i, u in enumerate(users)]
    with ThreadPoolExecutor(max_workers=VOTERS) as pool:
        statuses = list(pool.map(lambda click: standin.send_interactive(ws, click).status, clicks))
    assert statuses == [200] * VOTERS


def assert_final_message_shows_everyone(standin, ws, url: str, poll_id: str, ts: str, quiet: float) -> None:
    assert wait_for(lambda: len(rows(url, poll_votes, poll_id=poll_id)) == VOTERS, timeout=30)
    everyone = f"{VOTERS} people voted"
    shown = wait_for(
        lambda: everyone in footer(next(m for m in standin.messages(ws.team_id) if m["ts"] == ts))
        and quiet_for(standin, ts, quiet),
        timeout=45,
    )
    updates = [c for c in standin.calls_for("chat.update") if c.params.get("ts") == ts]
    applied = [c for c in updates if c.ok]
    assert shown, [footer(c.params)[-80:] for c in applied[-3:]]
    assert everyone in footer(applied[-1].params)  # the last update Slack applied
    assert all(c.team_id == ws.team_id and c.token_kind == "bot" for c in updates)
    assert len(applied) < VOTERS  # coalesced: fewer updates than votes
    votes = rows(url, poll_votes, poll_id=poll_id)
    assert len({v.user_id for v in votes}) == VOTERS
    assert sorted(v.position for v in votes) == [0] * (VOTERS // 2) + [1] * (VOTERS // 2)


def test_fifty_simultaneous_votes_with_and_without_rate_limits(db_url, standin, app_server_factory) -> None:
    database.upgrade(database.create_engine(db_url, pool_size=1))
    server = app_server_factory(db_url)
    ws = standin.create_workspace(name="Busy")
    install(server.url, standin, ws.team_id)
    users = [standin.add_user(ws.team_id) for _ in range(VOTERS)]
    calls = Calls(standin)

    poll_id, ts, _ = post_poll_with_command(standin, calls, ws, '"Ship it?" "Yes" "No"')
    # Slack's real latency: an update takes a while, so the votes that arrive meanwhile must be
    # coalesced into the next one rather than each sending its own.
    standin.latency_seconds = 0.1
    vote_all_at_once(standin, ws, users, poll_id, ts)
    assert_final_message_shows_everyone(standin, ws, db_url, poll_id, ts, quiet=0.5)

    # Slack now refuses chat.update beyond 2 a second for this workspace (429, Retry-After: 1).
    standin.set_rate_limit("chat.update", max_calls=2, per_seconds=1, retry_after=1)
    poll_id, ts, _ = post_poll_with_command(standin, calls, ws, '"Ship it again?" "Yes" "No"')
    vote_all_at_once(standin, ws, users, poll_id, ts)
    # Quiet for longer than a sender waits between attempts (Retry-After plus jitter).
    assert_final_message_shows_everyone(standin, ws, db_url, poll_id, ts, quiet=2.5)
    refused = [c for c in standin.calls_for("chat.update") if c.params.get("ts") == ts and c.status == 429]
    assert refused, "the rate limit never kicked in"
    assert "Traceback" not in server.logs(), json.dumps(server.logs()[-2000:])
