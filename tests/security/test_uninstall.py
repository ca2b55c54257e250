"""Uninstall and token revocation on SQLite, PostgreSQL and MariaDB, checked in the database.

Feature data is seeded generically (one synthetic row in every feature table on the shared
metadata), and "gone" is checked generically: no column of any table still holds the workspace's
id or key. A feature table whose rows a deletion hook does not remove fails here.
"""

from __future__ import annotations

import sqlalchemy as sa

from bolt_app.storage import tables
from bolt_app.storage.tables import workspace_key
from tests.security.support import rows_carrying, seed_feature_rows
from tests.support import install, wait_for


def _per_table(found: dict) -> dict[str, int]:
    return {name: len(rows) for name, rows in found.items()}


def _replies(standin, team_id: str):
    return [c for c in standin.calls_for("chat.postMessage") if c.team_id == team_id and c.ok]


def test_app_uninstalled_deletes_the_workspace_and_nothing_else(live_app, standin) -> None:
    gone, kept = standin.create_workspace(name="Leaving Co"), standin.create_workspace(name="Staying Co")
    for ws in (gone, kept):
        assert install(live_app.url, standin, ws.team_id).response.status == 200
    # A second user of the leaving workspace installs too (user token rows).
    extra_user = standin.add_user(gone.team_id)
    assert install(live_app.url, standin, gone.team_id, user_id=extra_user).response.status == 200
    for ws in (gone, kept):
        seed_feature_rows(live_app.engine, None, ws.team_id)
    kept_before = _per_table(rows_carrying(live_app.engine, kept.team_id))
    assert rows_carrying(live_app.engine, gone.team_id)

    response = standin.send_event(gone, {"type": "app_uninstalled"})
    standin.uninstall(team_id=gone.team_id)
    assert response.status == 200

    # Deleted before the 200 (not by a listener after it): nothing to wait for.
    leftovers = rows_carrying(live_app.engine, gone.team_id, workspace_key(None, gone.team_id))
    assert leftovers == {}, f"rows of the uninstalled workspace remain: {leftovers}"
    # The other workspace lost nothing.
    assert _per_table(rows_carrying(live_app.engine, kept.team_id)) == kept_before
    assert kept_before["slack_bots"] == 1 and kept_before["slack_installations"] == 1
    standin.clear_calls()
    assert standin.send_mention(kept, "still here?").status == 200
    assert wait_for(lambda: _replies(standin, kept.team_id))

    # Slack retries the delivery (say our 200 was lost): still fine, still nothing there.
    assert standin.send_event(gone, {"type": "app_uninstalled"}, retry_num=1).status == 200
    assert rows_carrying(live_app.engine, gone.team_id) == {}


def test_tokens_revoked_deletes_exactly_the_revoked_tokens(live_app, standin) -> None:
    ws = standin.create_workspace(name="Revoking Co")
    second_user = standin.add_user(ws.team_id)
    assert install(live_app.url, standin, ws.team_id).response.status == 200
    assert install(live_app.url, standin, ws.team_id, user_id=second_user).response.status == 200
    key = workspace_key(None, ws.team_id)
    store = live_app.app.installation_store

    def user_rows() -> dict[str, bool]:
        c = tables.installations.c
        with live_app.engine.connect() as conn:
            rows = conn.execute(sa.select(c.user_id, c.user_token, c.bot_token).where(c.workspace_key == key)).all()
        return {row.user_id: row.user_token is not None for row in rows}

    assert user_rows() == {ws.installer_user_id: True, second_user: True}

    # One user's token revoked: that user's installation goes, the other user and the bot stay.
    response = standin.send_event(ws, {"type": "tokens_revoked", "tokens": {"oauth": [ws.installer_user_id], "bot": []}})
    assert response.status == 200
    assert user_rows() == {second_user: True}
    assert store.find_bot(enterprise_id=None, team_id=ws.team_id) is not None

    # The bot token revoked: the bot row and every copy of the bot token go; the user token stays.
    response = standin.send_event(ws, {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": [ws.bot_user_id]}})
    assert response.status == 200
    assert store.find_bot(enterprise_id=None, team_id=ws.team_id) is None
    with live_app.engine.connect() as conn:
        c = tables.installations.c
        remaining = conn.execute(sa.select(c.user_id, c.user_token, c.bot_token, c.bot_refresh_token)
                                 .where(c.workspace_key == key)).one()
    assert remaining.user_id == second_user and remaining.user_token is not None
    assert remaining.bot_token is None and remaining.bot_refresh_token is None


def test_org_wide_uninstall_removes_the_orgs_rows(live_app, standin) -> None:
    org = standin.create_enterprise(name="Grid Org")
    member = standin.create_workspace(enterprise_id=org.enterprise_id, name="Grid Sales")
    standin.create_workspace(enterprise_id=org.enterprise_id, name="Grid Support")
    outsider = standin.create_workspace(name="Standalone Co")
    assert install(live_app.url, standin, member.team_id, org_install=True).response.status == 200
    assert install(live_app.url, standin, outsider.team_id).response.status == 200
    org_key = workspace_key(org.enterprise_id, None)
    seed_feature_rows(live_app.engine, org.enterprise_id, None)
    seed_feature_rows(live_app.engine, None, outsider.team_id)
    assert rows_carrying(live_app.engine, org_key)

    # The org-wide install's user token revoked (delivered through one of its workspaces).
    response = standin.send_event(member, {"type": "tokens_revoked",
                                           "tokens": {"oauth": [member.installer_user_id], "bot": []}})
    assert response.status == 200
    c = tables.installations.c
    with live_app.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(c.workspace_key == org_key)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(tables.bots)
                            .where(tables.bots.c.workspace_key == org_key)).scalar() == 1

    # Uninstalled org-wide: every row of the org install goes, the standalone workspace stays.
    response = standin.send_event(member, {"type": "app_uninstalled"})
    standin.uninstall(enterprise_id=org.enterprise_id)
    assert response.status == 200
    leftovers = rows_carrying(live_app.engine, org.enterprise_id, org_key)
    assert leftovers == {}, f"rows of the org-wide install remain: {leftovers}"
    assert rows_carrying(live_app.engine, outsider.team_id)["slack_bots"]
