"""The revocation rules at the store and handler level, where the clock can be set exactly: the
boundary of "installed after the event", which rows each event touches, another app's rows on the
same database, and what is logged. (tests/security/test_revocation.py drives the same through HTTP.)"""

from __future__ import annotations

import logging
from typing import Iterator

import pytest
import sqlalchemy as sa
from slack_bolt import BoltContext
from slack_sdk.oauth.installation_store import Installation

from bolt_app.features.idempotency import delivery_row, insert_ignore, processed_deliveries
from bolt_app.revocation import handle_revocation
from bolt_app.storage import tables
from bolt_app.storage.installation_store import InstallationStore
from bolt_app.storage.tables import utc_now, workspace_key

SENT = 1_700_000_000  # the event's event_time
TEAM = "T0REVOKE1"
KEY = workspace_key(None, TEAM)


@pytest.fixture
def store(engine) -> Iterator[InstallationStore]:  # type: ignore[no-untyped-def]
    store = InstallationStore(client_id="1111.2222", engine=engine)
    store.changed_keys = []  # type: ignore[attr-defined]
    store.change_listeners.append(store.changed_keys.append)  # type: ignore[attr-defined]
    yield store


def save(store: InstallationStore, *, user: str = "U1", at: float, bot: bool = True, team: str = TEAM) -> None:
    store.save(Installation(
        app_id="A1", team_id=team, user_id=user, installed_at=float(at),
        bot_token="xoxb-1-bot" if bot else None, bot_id="B1" if bot else None, bot_user_id="UB1" if bot else None,
        user_token=f"xoxp-1-{user}", user_scopes=["search:read"],
    ))


def rows(engine, client_id: str = "1111.2222") -> dict[str, object]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        users = set(conn.execute(sa.select(tables.installations.c.user_id).where(
            tables.installations.c.workspace_key == KEY, tables.installations.c.client_id == client_id)).scalars())
        bot = conn.execute(sa.select(tables.bots.c.bot_token).where(
            tables.bots.c.workspace_key == KEY, tables.bots.c.client_id == client_id)).first()
        copies = set(conn.execute(sa.select(tables.installations.c.bot_token).where(
            tables.installations.c.workspace_key == KEY, tables.installations.c.client_id == client_id)).scalars())
    return {"users": users, "bot": bot is not None, "bot_copies": copies - {None} != set()}


def claim_once(event_id: str):  # type: ignore[no-untyped-def]
    row = delivery_row("revocations", f"revocation:{event_id}")
    return lambda conn: insert_ignore(conn, processed_deliveries, row)


def test_an_installation_in_a_later_second_than_the_event_is_kept(store, engine) -> None:  # type: ignore[no-untyped-def]
    save(store, at=SENT + 1)  # the next second: a reinstall the event knows nothing about
    assert store.revoke(enterprise_id=None, team_id=TEAM, uninstall=True, sent_at=SENT) is False
    assert rows(engine) == {"users": {"U1"}, "bot": True, "bot_copies": True}
    assert store.changed_keys == [KEY]  # only the save's

    save(store, at=SENT + 0.999)  # the same second as the event: Slack's event_time is whole seconds
    assert store.revoke(enterprise_id=None, team_id=TEAM, uninstall=True, sent_at=SENT) is True
    assert rows(engine) == {"users": set(), "bot": False, "bot_copies": False}
    assert store.changed_keys == [KEY, KEY, KEY]  # the revocation's too: cached tokens are dropped


def test_user_tokens_authorized_after_the_event_are_kept(store, engine) -> None:  # type: ignore[no-untyped-def]
    save(store, user="U1", at=SENT - 10)
    save(store, user="U2", at=SENT + 1, bot=False)
    save(store, user="U3", at=SENT + 0.5, bot=False)
    assert store.revoke(enterprise_id=None, team_id=TEAM, user_ids=["U1", "U2", "U3"], sent_at=SENT) is True
    assert rows(engine)["users"] == {"U2"}
    assert store.revoke(enterprise_id=None, team_id=TEAM, user_ids=["U1", "U3"], sent_at=SENT) is False  # gone
    assert store.revoke(enterprise_id=None, team_id=TEAM, user_ids=["U2"], sent_at=SENT + 1) is True
    assert rows(engine)["users"] == set()


def test_a_bot_revocation_looks_at_the_bot_only(store, engine) -> None:  # type: ignore[no-untyped-def]
    save(store, user="U1", at=SENT - 10)              # the bot was installed before the event
    save(store, user="U2", at=SENT + 5, bot=False)    # a user authorized after it: not the bot
    assert store.revoke(enterprise_id=None, team_id=TEAM, bot=True, sent_at=SENT) is True
    assert rows(engine) == {"users": {"U1", "U2"}, "bot": False, "bot_copies": False}

    save(store, user="U1", at=SENT + 5)               # the bot reinstalled after the event
    assert store.revoke(enterprise_id=None, team_id=TEAM, bot=True, sent_at=SENT) is False
    assert rows(engine)["bot"] is True
    # Without an event time (none in the body), the revocation applies as it always did.
    assert store.revoke(enterprise_id=None, team_id=TEAM, bot=True) is True
    assert rows(engine)["bot"] is False
    assert store.revoke(enterprise_id=None, team_id=TEAM) is False  # nothing named: nothing to do


def test_each_event_is_applied_once(store, engine) -> None:  # type: ignore[no-untyped-def]
    save(store, at=SENT - 10)
    assert store.revoke(enterprise_id=None, team_id=TEAM, user_ids=["U1"], sent_at=SENT, claim=claim_once("Ev1")) is True
    save(store, at=SENT - 5)  # even an older-looking install (clocks differ) is safe from a repeat
    assert store.revoke(enterprise_id=None, team_id=TEAM, uninstall=True, sent_at=SENT, claim=claim_once("Ev1")) is False
    assert rows(engine)["users"] == {"U1"}
    assert store.revoke(enterprise_id=None, team_id=TEAM, uninstall=True, sent_at=SENT, claim=claim_once("Ev2")) is True
    assert rows(engine)["users"] == set()


def test_another_apps_rows_on_the_same_database_are_never_touched(store, engine) -> None:  # type: ignore[no-untyped-def]
    other = InstallationStore(client_id="9999.8888", engine=engine)
    for s in (store, other):
        save(s, user="U1", at=SENT - 10)
    save(other, user="U2", at=SENT - 10, bot=False)
    assert store.revoke(enterprise_id=None, team_id=TEAM, user_ids=["U1", "U2"], bot=True, sent_at=SENT) is True
    assert rows(engine, "9999.8888") == {"users": {"U1", "U2"}, "bot": True, "bot_copies": True}
    save(store, user="U1", at=SENT - 10)
    assert store.revoke(enterprise_id=None, team_id=TEAM, uninstall=True, sent_at=SENT) is True
    assert rows(engine) == {"users": set(), "bot": False, "bot_copies": False}
    assert rows(engine, "9999.8888") == {"users": {"U1", "U2"}, "bot": True, "bot_copies": True}
    # The stock-API deletes keep to their app too.
    save(store, user="U1", at=SENT - 10)
    store.delete_bot(enterprise_id=None, team_id=TEAM)
    store.delete_installation(enterprise_id=None, team_id=TEAM, user_id="U1")
    store.delete_all(enterprise_id=None, team_id=TEAM)
    assert rows(engine) == {"users": set(), "bot": False, "bot_copies": False}
    assert rows(engine, "9999.8888") == {"users": {"U1", "U2"}, "bot": True, "bot_copies": True}


def context(enterprise_id: str | None = None, team_id: str | None = TEAM, org: bool = False) -> BoltContext:
    return BoltContext({"enterprise_id": enterprise_id, "team_id": team_id, "is_enterprise_install": org})


def test_what_the_handler_does_and_logs(store, engine, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="bolt_app.revocation")

    def logged() -> list[str]:
        lines = [r.getMessage() for r in caplog.records if r.name == "bolt_app.revocation"]
        caplog.clear()
        return lines

    save(store, user="U1", at=SENT - 10)
    save(store, user="U2", at=SENT - 10, bot=False)
    body = {"type": "event_callback", "event_id": "EvH1", "event_time": SENT}
    revoked = {"type": "tokens_revoked", "tokens": {"oauth": ["U2", 7, ""], "bot": ["UB1"]}}
    handle_revocation(store, revoked, context(), body)
    assert rows(engine) == {"users": {"U1"}, "bot": False, "bot_copies": False}
    assert logged() == [f"Tokens revoked in enterprise_id=None team_id='{TEAM}': 1 user token(s) and the bot token deleted"]
    handle_revocation(store, revoked, context(), body)  # the same event again
    assert logged() == [f"Tokens revoked in enterprise_id=None team_id='{TEAM}': 1 user token(s) and the bot token: "
                        "nothing deleted (a repeat, already gone, or older than the installation)"]
    handle_revocation(store, {"type": "tokens_revoked", "tokens": {"oauth": ["U9"]}}, context(),
                      {**body, "event_id": "EvH2"})
    assert logged()[0].endswith(": 1 user token(s): nothing deleted (a repeat, already gone, or older than the installation)")

    uninstall = {"type": "app_uninstalled"}
    handle_revocation(store, uninstall, context(), {**body, "event_id": "EvH3", "event_time": SENT - 60})
    assert rows(engine)["users"] == {"U1"}
    assert logged() == [f"app_uninstalled for enterprise_id=None team_id='{TEAM}' ignored: a repeat, or older than "
                        "the installation"]
    handle_revocation(store, uninstall, context(enterprise_id="E1", team_id=TEAM), {**body, "event_id": "EvH4"})
    assert rows(engine)["users"] == {"U1"}  # another key (E1:T…): nothing of this workspace
    assert logged() == [f"Uninstalled from enterprise_id='E1' team_id='{TEAM}': tokens and data deleted"]
    handle_revocation(store, uninstall, context(), {**body, "event_id": "EvH5"})
    assert rows(engine)["users"] == set()
    assert logged() == [f"Uninstalled from enterprise_id=None team_id='{TEAM}': tokens and data deleted"]

    handle_revocation(store, uninstall, context(team_id=None), body)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "'app_uninstalled' event without a workspace or enterprise id: nothing to delete")]


def test_an_org_wide_revocation_is_keyed_by_the_enterprise(store, engine) -> None:  # type: ignore[no-untyped-def]
    store.save(Installation(app_id="A1", enterprise_id="E1", team_id=None, user_id="U1", installed_at=float(SENT - 10),
                            is_enterprise_install=True, bot_token="xoxb-1-org", bot_id="B1", bot_user_id="UB1"))
    handle_revocation(store, {"type": "app_uninstalled"}, context(enterprise_id="E1", team_id=TEAM, org=True),
                      {"event_id": "EvORG", "event_time": SENT})
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tables.bots)
                            .where(tables.bots.c.workspace_key == workspace_key("E1", None))).scalar() == 0


@pytest.mark.parametrize("event_time, applies", [(SENT, False), (0, True), (-5, True), (True, True), ("1700000000", True),
                                                 (float(SENT), True), (None, True)])
def test_only_a_whole_positive_event_time_counts(store, engine, event_time, applies) -> None:  # type: ignore[no-untyped-def]
    save(store, at=SENT + 10)  # installed after SENT: a usable event_time of SENT keeps it
    handle_revocation(store, {"type": "app_uninstalled"}, context(), {"event_id": "EvT", "event_time": event_time})
    assert (rows(engine)["users"] == set()) is applies


@pytest.mark.parametrize("event_id", [None, "", 42])
def test_without_a_usable_event_id_nothing_is_recorded(store, engine, event_id) -> None:  # type: ignore[no-untyped-def]
    save(store, at=SENT - 10)
    handle_revocation(store, {"type": "app_uninstalled"}, context(), {"event_id": event_id, "event_time": SENT})
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(processed_deliveries)).scalar() == 0
    assert rows(engine)["users"] == set()
