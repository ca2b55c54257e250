"""An uninstalled or revoked workspace is not served by any process (issue 17, part 4).

Each process (gunicorn worker, host) keeps its own authorize cache. The database decides instead:
feature writes hold the installation row (`InstallationGate`), every Web API call first checks
that the installation still holds its token (`InstalledOnlyClient`), and a token Slack refuses
for good is marked in the database. Here two apps on one database stand for two processes; the
test with four gunicorn workers is in test_every_case_four_workers.py.
"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from bolt_app import database
from bolt_app.app import create_app
from bolt_app.database import write_transaction
from bolt_app.features.polls.domain import Draft
from bolt_app.features.polls.tables import polls
from bolt_app.features.workspace import WorkspaceRef
from bolt_app.storage import tables
from bolt_app.storage.tables import workspace_key
from bolt_app.tokens.installed import WorkspaceNotInstalled
from bolt_app.web import create_wsgi_app
from tests.security.support import InProcessServer, rows_carrying
from tests.support import install, settings_for, wait_for


def _second_process(standin, db_url):
    """Another app on the same database, with its own caches (as another worker or host has)."""
    server = InProcessServer()
    engine = database.create_engine(db_url, pool_size=10)
    app = create_app(settings_for(standin, db_url, SLACK_REDIRECT_URI=f"{server.url}/slack/oauth_redirect"),
                     engine=engine)
    server.serve(create_wsgi_app(app))
    return server, app


def _mention(standin, ws, url):
    with standin.delivering_to(url):
        return standin.send_mention(ws, "help")


def _replies(standin, ws, since: int) -> list:
    return [c for c in standin.calls[since:] if c.team_id == ws.team_id and c.method != "oauth.v2.access"]


def _served_by_both(standin, ws, first, second) -> None:  # type: ignore[no-untyped-def]
    """A mention of `ws` answered and replied to by each process: both have its tokens cached."""
    for url in (first.events_url, second.url + "/slack/events"):
        mark = len(standin.calls)
        assert _mention(standin, ws, url).status == 200
        assert wait_for(lambda: _replies(standin, ws, mark))


def test_after_an_uninstall_another_process_with_a_warm_cache_neither_posts_nor_stores(live_app_on, standin,
                                                                                    db_url) -> None:
    first = live_app_on
    ws, other = standin.create_workspace(name="Leaving"), standin.create_workspace(name="Staying")
    for w in (ws, other):
        assert install(first.url, standin, w.team_id).response.status == 200
    second, second_app = _second_process(standin, db_url)
    try:
        # Both processes have served the workspace: the second's cache holds its tokens.
        _served_by_both(standin, ws, first, second)
        assert second_app.authorize_cache.get((workspace_key(None, ws.team_id), None)) is not None

        standin.uninstall(team_id=ws.team_id)
        with standin.delivering_to(first.events_url):
            assert standin.send_event(ws, {"type": "app_uninstalled"}).status == 200
        mark = len(standin.calls)

        # The second process still has the entry cached; it must not use it.
        assert second_app.authorize_cache.get((workspace_key(None, ws.team_id), None)) is not None
        url = second.url + "/slack/events"
        assert _mention(standin, ws, url).status == 200
        with standin.delivering_to(url):
            assert standin.send_slash_command(ws, "/poll", '"Still here?" "Yes" "No"').status == 200
        time.sleep(0.5)  # lazy work, if any, has run
        assert _replies(standin, ws, mark) == []  # no call at all with the removed tokens
        assert rows_carrying(first.engine, ws.team_id) == {}
        # Learned from the database: the second process dropped its stale entry.
        assert second_app.authorize_cache.get((workspace_key(None, ws.team_id), None)) is None

        # The other workspace is served by both processes as before.
        for url in (first.events_url, second.url + "/slack/events"):
            mark = len(standin.calls)
            assert _mention(standin, other, url).status == 200
            assert wait_for(lambda: _replies(standin, other, mark))
    finally:
        second.stop()
        second_app.engine.dispose()


def test_a_token_slack_refuses_for_good_is_dropped_in_every_process(live_app_on, standin, db_url) -> None:
    first = live_app_on
    ws = standin.create_workspace(name="Revoked Elsewhere")
    assert install(first.url, standin, ws.team_id).response.status == 200
    second, second_app = _second_process(standin, db_url)
    try:
        _served_by_both(standin, ws, first, second)
        # Slack kills the tokens, and the event telling the app is lost: the first process hears
        # it from the Web API (account_inactive) on its next call.
        standin.uninstall(team_id=ws.team_id)
        mark = len(standin.calls)
        assert _mention(standin, ws, first.events_url).status == 200
        refused = wait_for(lambda: _replies(standin, ws, mark))
        assert [(c.method, c.error) for c in refused] == [("chat.postMessage", "account_inactive")]
        c = tables.bots.c

        def status():  # type: ignore[no-untyped-def]
            with first.engine.connect() as conn:
                return conn.execute(sa.select(c.status, c.status_reason).where(
                    c.workspace_key == workspace_key(None, ws.team_id))).one()

        assert wait_for(lambda: status().status == "needs_reinstall"), status()
        assert "account_inactive" in status().status_reason

        # The second process, cache still warm, makes no call with that token.
        mark = len(standin.calls)
        assert _mention(standin, ws, second.url + "/slack/events").status == 200
        time.sleep(0.5)
        assert _replies(standin, ws, mark) == []

        # Installing again clears the mark.
        assert install(first.url, standin, ws.team_id).response.status == 200
        mark = len(standin.calls)
        assert _mention(standin, ws, second.url + "/slack/events").status == 200
        assert wait_for(lambda: [c for c in _replies(standin, ws, mark) if c.ok])
    finally:
        second.stop()
        second_app.engine.dispose()


def test_feature_writes_after_an_uninstall_store_nothing(live_app_on, standin) -> None:
    live = live_app_on
    ws = standin.create_workspace(name="Gone Co")
    assert install(live.url, standin, ws.team_id).response.status == 200
    ref = WorkspaceRef(None, ws.team_id)
    service, deliveries = live.app.features.polls.service, live.app.features.deliveries
    poll = service.create(ref, creator_id="U1", channel_id="C1", draft=Draft("Q?", ("A", "B")))
    service.attach_message(ref, poll.poll_id, "C1", "1.1")
    live.app.installation_store.delete_all(enterprise_id=None, team_id=ws.team_id)

    with pytest.raises(WorkspaceNotInstalled):
        service.create(ref, creator_id="U1", channel_id="C1", draft=Draft("Again?", ("A", "B")))
    with pytest.raises(WorkspaceNotInstalled):
        service.vote(ref, poll.poll_id, 0, "U2", delivery_key="action:late")  # a late vote
    with pytest.raises(WorkspaceNotInstalled):
        deliveries.claim(ref, "event:EvLATE")
    assert rows_carrying(live.engine, ws.team_id, ref.key) == {}


def test_a_write_racing_the_uninstall_is_ordered_by_the_database(live_app_on, standin) -> None:
    """The uninstall commits either before a write (which then stores nothing) or after it (and
    deletes what it stored): never a row left behind."""
    live = live_app_on
    ws = standin.create_workspace(name="Racing Co")
    assert install(live.url, standin, ws.team_id).response.status == 200
    ref = WorkspaceRef(None, ws.team_id)
    gate = live.app.features.deliveries.gate
    holding, release = threading.Event(), threading.Event()
    uninstalled_at: list[float] = []

    def write_holding_the_installation() -> None:
        with write_transaction(live.engine) as conn:
            gate.require(conn, ref.key)
            conn.execute(polls.insert().values(
                workspace_key=ref.key, poll_id="late0001", enterprise_id=None, team_id=ws.team_id, creator_id="U1",
                channel_id="C1", question="Late?", anonymous=False, multiple_choice=False, revision=0,
                created_at=tables.utc_now()))
            holding.set()
            release.wait(5)
            time.sleep(0.3)  # the uninstall is waiting on us now
            committed_at.append(time.monotonic())

    def uninstall() -> None:
        holding.wait(5)
        release.set()
        live.app.installation_store.delete_all(enterprise_id=None, team_id=ws.team_id)
        uninstalled_at.append(time.monotonic())

    committed_at: list[float] = []
    threads = [threading.Thread(target=write_holding_the_installation), threading.Thread(target=uninstall)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert committed_at and uninstalled_at and uninstalled_at[0] >= committed_at[0]  # it waited for the write
    assert rows_carrying(live.engine, ws.team_id, ref.key) == {}  # and deleted it
