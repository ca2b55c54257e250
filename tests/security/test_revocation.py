"""A revocation event is applied once, and never to what was installed after Slack sent it.

The signature window lets the same signed bytes be sent again for five minutes. An
`app_uninstalled` replayed after the workspace reinstalled must not delete the new installation:
its `event_id` was applied already, and its `event_time` is older than the reinstall. Each rule
is tested where the other one cannot help. On SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import json
import time

import sqlalchemy as sa

from bolt_app.storage import tables
from bolt_app.storage.tables import to_db_time, workspace_key
from tests.security.support import rows_carrying, seed_feature_rows
from tests.support import Browser, install


def signed_event(standin, ws, event: dict, *, event_id: str, event_time: int) -> tuple[bytes, dict[str, str]]:  # type: ignore[no-untyped-def]
    """The bytes and signed headers of one delivery (signed now; `event_time` as given)."""
    with standin.capturing_requests() as captured:
        standin.send_event(ws, event, event_id=event_id)
    ((raw, _),) = captured
    envelope = json.loads(raw)
    envelope["event_time"] = event_time
    return standin.prepare_request(json.dumps(envelope).encode())


def deliver(live_app, request: tuple[bytes, dict[str, str]]) -> int:  # type: ignore[no-untyped-def]
    raw, headers = request
    return Browser().request("POST", live_app.events_url, body=raw, headers=headers).status


def counts(engine, key: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.workspace_key == key)).scalar()
                for t in (tables.bots, tables.installations)}


def user_ids(engine, key: str) -> set[str]:  # type: ignore[no-untyped-def]
    c = tables.installations.c
    with engine.connect() as conn:
        return set(conn.execute(sa.select(c.user_id).where(c.workspace_key == key)).scalars())


def bot_token_kept(engine, key: str) -> bool:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(sa.select(tables.bots.c.bot_token).where(tables.bots.c.workspace_key == key)).scalar() is not None


def installed_seconds_ago(engine, key: str, seconds: int) -> None:  # type: ignore[no-untyped-def]
    """As if the workspace had been installed `seconds` ago (no test waits for the clock)."""
    with engine.begin() as conn:
        for table in (tables.bots, tables.installations):
            conn.execute(table.update().where(table.c.workspace_key == key)
                         .values(installed_at=to_db_time(time.time() - seconds)))


def reinstall(live_app, standin, ws) -> None:  # type: ignore[no-untyped-def]
    assert install(live_app.url, standin, ws.team_id).response.status == 200


def test_the_same_uninstall_replayed_after_a_reinstall_leaves_the_new_installation(live_app, standin) -> None:  # type: ignore[no-untyped-def]
    ws = standin.create_workspace(name="Comes Back Co")
    key = workspace_key(None, ws.team_id)
    reinstall(live_app, standin, ws)
    installed_seconds_ago(live_app.engine, key, 10)
    uninstall = signed_event(standin, ws, {"type": "app_uninstalled"}, event_id="EvGONE1",
                             event_time=int(time.time()) - 5)
    assert deliver(live_app, uninstall) == 200
    standin.uninstall(team_id=ws.team_id)
    assert counts(live_app.engine, key) == {"slack_bots": 0, "slack_installations": 0}

    reinstall(live_app, standin, ws)
    seed_feature_rows(live_app.engine, None, ws.team_id)
    before = {name: len(rows) for name, rows in rows_carrying(live_app.engine, ws.team_id).items()}
    # The very same bytes, still inside the signature window: answered, and nothing deleted.
    assert deliver(live_app, uninstall) == 200
    assert counts(live_app.engine, key) == {"slack_bots": 1, "slack_installations": 1}
    assert {name: len(rows) for name, rows in rows_carrying(live_app.engine, ws.team_id).items()} == before
    assert live_app.app.installation_store.find_bot(enterprise_id=None, team_id=ws.team_id) is not None


def test_a_repeated_event_id_is_ignored_even_when_slacks_clock_is_ahead(live_app, standin) -> None:  # type: ignore[no-untyped-def]
    # Slack's clock 30 s ahead of ours: the reinstall looks older than the uninstall, and only the
    # event id tells the replay apart.
    ws = standin.create_workspace(name="Clock Skew Co")
    key = workspace_key(None, ws.team_id)
    reinstall(live_app, standin, ws)
    uninstall = signed_event(standin, ws, {"type": "app_uninstalled"}, event_id="EvSKEW1",
                             event_time=int(time.time()) + 30)
    assert deliver(live_app, uninstall) == 200
    assert counts(live_app.engine, key) == {"slack_bots": 0, "slack_installations": 0}
    reinstall(live_app, standin, ws)
    assert deliver(live_app, uninstall) == 200
    assert counts(live_app.engine, key) == {"slack_bots": 1, "slack_installations": 1}

    # Another uninstall (a new event id) is applied.
    again = signed_event(standin, ws, {"type": "app_uninstalled"}, event_id="EvSKEW2",
                         event_time=int(time.time()) + 30)
    assert deliver(live_app, again) == 200
    assert counts(live_app.engine, key) == {"slack_bots": 0, "slack_installations": 0}


def test_an_uninstall_sent_before_the_installation_deletes_nothing(live_app, standin) -> None:  # type: ignore[no-untyped-def]
    # Never seen before (a delivery that was delayed, or its first attempts failed), but sent before
    # the installation that is there now: it is about an older one.
    ws = standin.create_workspace(name="Late Event Co")
    key = workspace_key(None, ws.team_id)
    reinstall(live_app, standin, ws)
    late = signed_event(standin, ws, {"type": "app_uninstalled"}, event_id="EvLATE1",
                        event_time=int(time.time()) - 60)
    assert deliver(live_app, late) == 200
    assert counts(live_app.engine, key) == {"slack_bots": 1, "slack_installations": 1}
    # One sent now is applied.
    now = signed_event(standin, ws, {"type": "app_uninstalled"}, event_id="EvNOW1", event_time=int(time.time()))
    assert deliver(live_app, now) == 200
    assert counts(live_app.engine, key) == {"slack_bots": 0, "slack_installations": 0}


def test_a_token_revocation_keeps_what_was_authorized_after_it(live_app, standin) -> None:  # type: ignore[no-untyped-def]
    ws = standin.create_workspace(name="Revoke Late Co")
    other = standin.add_user(ws.team_id)
    key = workspace_key(None, ws.team_id)
    reinstall(live_app, standin, ws)
    assert install(live_app.url, standin, ws.team_id, user_id=other).response.status == 200
    assert user_ids(live_app.engine, key) == {ws.installer_user_id, other}

    sent_before = int(time.time()) - 60
    revoke_both = {"type": "tokens_revoked", "tokens": {"oauth": [ws.installer_user_id, other], "bot": [ws.bot_user_id]}}
    late = signed_event(standin, ws, revoke_both, event_id="EvREV1", event_time=sent_before)
    assert deliver(live_app, late) == 200
    assert user_ids(live_app.engine, key) == {ws.installer_user_id, other}
    assert bot_token_kept(live_app.engine, key)

    # Sent now: the user tokens and the bot token go, once.
    current = signed_event(standin, ws, revoke_both, event_id="EvREV2", event_time=int(time.time()))
    assert deliver(live_app, current) == 200
    assert user_ids(live_app.engine, key) == set()
    assert counts(live_app.engine, key)["slack_bots"] == 0

    # The user authorizes again; the same revocation replayed leaves the new authorization alone.
    reinstall(live_app, standin, ws)
    assert deliver(live_app, current) == 200
    assert user_ids(live_app.engine, key) == {ws.installer_user_id} and bot_token_kept(live_app.engine, key)


def test_the_applied_event_ids_carry_no_workspace_data(live_app, standin) -> None:  # type: ignore[no-untyped-def]
    ws = standin.create_workspace(name="Leaves No Trace Co")
    reinstall(live_app, standin, ws)
    uninstall = signed_event(standin, ws, {"type": "app_uninstalled"}, event_id="EvTRACE1", event_time=int(time.time()))
    assert deliver(live_app, uninstall) == 200
    assert rows_carrying(live_app.engine, ws.team_id, workspace_key(None, ws.team_id)) == {}
    with live_app.engine.connect() as conn:
        kinds = conn.execute(sa.text("SELECT workspace_key, kind FROM processed_deliveries")).all()
    assert [tuple(k) for k in kinds] == [("revocations", "revocation")]
