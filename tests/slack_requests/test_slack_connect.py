"""Slack Connect: a person from another organization submits the app's modal (issue 17, part 2).

The body's `enterprise`, `team` and `user.team_id` are the visitor's organization; only
`view.app_installed_team_id` names the workspace that installed the app. The submission must be
served by that installation (its token, its data), and the visitor's ids must never select
another tenant's installation, even when the visitor's organization installed the app too.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from bolt_app.features.polls.tables import polls
from bolt_app.storage.tables import workspace_key
from tests.payloads import slack_samples as samples
from tests.security.support import rows_carrying
from tests.support import install, wait_for


def _side(ws) -> samples.Side:
    return samples.Side(team_id=ws.team_id, user_id=ws.installer_user_id, enterprise_id=ws.enterprise_id,
                        domain=ws.domain, enterprise_name=ws.enterprise_name or "")


def visitor_submits_poll_modal(standin, host_installed_id: str, visitor, channel_id: str, question: str,
                               bot_id: str = "B0SAMPLE") -> dict:
    """The real shape: the visitor org's enterprise / team / user, the installing side in
    `view.app_installed_team_id` (and its bot in `view.bot_id`), `view.team_id` the visitor's workspace."""
    modal = samples.view("poll_create_modal", viewer_team_id=visitor.team_id, installed_team_id=host_installed_id,
                         values=samples.poll_modal_values(question, ["Pizza", "Sushi"], channel_id), bot_id=bot_id)
    body = samples.view_submission(_side(visitor), modal)
    assert (body["enterprise"] or {}).get("id") == visitor.enterprise_id
    assert body["team"]["id"] == body["user"]["team_id"] == visitor.team_id
    return body


def poll_keys(engine, question: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(polls.c.workspace_key).where(polls.c.question == question)).scalars())


def test_a_visitor_submission_is_served_by_the_installing_workspace_never_the_visitors(live_app_on, standin) -> None:
    live = live_app_on
    host = standin.create_workspace(enterprise_id="E0HOST", name="Host Sales")
    visitor = standin.create_workspace(enterprise_id="E0GUEST", name="Guest Support")
    # The visitor's organization installed the app too, separately: a tenant of its own.
    for ws in (host, visitor):
        assert install(live.url, standin, ws.team_id).response.status == 200
    host_key, visitor_key = workspace_key("E0HOST", host.team_id), workspace_key("E0GUEST", visitor.team_id)
    visitor_rows = rows_carrying(live.engine, visitor_key)
    shared_channel = "C0SHARED1"
    standin.clear_calls()

    body = visitor_submits_poll_modal(standin, host.team_id, visitor, shared_channel, "Offsite city?")
    response = samples.send(standin, body)
    assert (response.status, response.body) == (200, b"")  # the modal closes

    posted = wait_for(lambda: standin.calls_for("chat.postMessage"))
    assert len(posted) == 1 and posted[0].ok, posted
    assert (posted[0].team_id, posted[0].enterprise_id, posted[0].token_kind) == (host.team_id, "E0HOST", "bot")
    assert posted[0].params["channel"] == shared_channel
    # The poll is the installing workspace's data; nothing new is keyed to the visitor.
    assert wait_for(lambda: poll_keys(live.engine, "Offsite city?")) == [host_key]
    assert rows_carrying(live.engine, visitor_key) == visitor_rows
    assert not rows_carrying(live.engine, workspace_key("E0GUEST", host.team_id))

    # The installing workspace uninstalls: the visitor's installation must not take over.
    assert standin.send_event(host, {"type": "app_uninstalled"}).status == 200
    standin.uninstall(team_id=host.team_id)
    standin.clear_calls()
    response = samples.send(standin, visitor_submits_poll_modal(standin, host.team_id, visitor, shared_channel,
                                                                 "After uninstall?"))
    assert (response.status, response.body) == (200, b"")
    assert standin.calls == [] and poll_keys(live.engine, "After uninstall?") == []
    assert rows_carrying(live.engine, visitor_key) == visitor_rows


def two_orgs_installed_org_wide(live, standin):  # type: ignore[no-untyped-def]
    """A host organization and a visiting one, each with the app installed org-wide: a workspace
    of each."""
    standin.create_enterprise("E0HOSTORG", name="Host Org")
    standin.create_enterprise("E0GUESTORG", name="Guest Org")
    host = standin.create_workspace(enterprise_id="E0HOSTORG", name="Host Org Sales")
    visitor = standin.create_workspace(enterprise_id="E0GUESTORG", name="Guest Org Sales")
    for ws in (host, visitor):
        assert install(live.url, standin, ws.team_id, org_install=True).response.status == 200
    return host, visitor


def test_an_org_wide_installing_side_is_found_by_its_enterprise(live_app_on, standin) -> None:
    live = live_app_on
    host, visitor = two_orgs_installed_org_wide(live, standin)
    standin.clear_calls()

    # An org-wide installation is named by its enterprise id in app_installed_team_id.
    body = visitor_submits_poll_modal(standin, "E0HOSTORG", visitor, "C0SHARED2", "Which quarter?")
    body["is_enterprise_install"] = True
    assert samples.send(standin, body).status == 200
    posted = wait_for(lambda: standin.calls_for("chat.postMessage"))
    assert len(posted) == 1 and posted[0].ok and posted[0].enterprise_id == "E0HOSTORG", posted
    assert wait_for(lambda: poll_keys(live.engine, "Which quarter?")) == [workspace_key("E0HOSTORG", None)]


def test_an_org_wide_installing_side_named_by_a_member_workspace_is_found_by_the_views_bot(live_app_on,
                                                                                           standin) -> None:
    """Should Slack name a workspace of an org-wide installation in app_installed_team_id, that
    workspace has no installation of its own: the view's bot_id names the installation (never
    the visitor's organization, though it installed the app org-wide too)."""
    live = live_app_on
    host, visitor = two_orgs_installed_org_wide(live, standin)
    host_bot, visitor_bot = standin.workspace(host.team_id).bot_id, standin.workspace(visitor.team_id).bot_id
    assert host_bot != visitor_bot
    standin.clear_calls()

    body = visitor_submits_poll_modal(standin, host.team_id, visitor, "C0SHARED3", "Which month?", bot_id=host_bot)
    body["is_enterprise_install"] = True
    assert samples.send(standin, body).status == 200
    posted = wait_for(lambda: standin.calls_for("chat.postMessage"))
    assert len(posted) == 1 and posted[0].ok and posted[0].enterprise_id == "E0HOSTORG", posted
    assert wait_for(lambda: poll_keys(live.engine, "Which month?")) == [workspace_key("E0HOSTORG", None)]

    # A view naming a bot that is no installation's: not served by anyone.
    standin.clear_calls()
    body = visitor_submits_poll_modal(standin, host.team_id, visitor, "C0SHARED3", "Unknown bot?", bot_id="B0NOBODY")
    body["is_enterprise_install"] = True
    assert samples.send(standin, body).status == 200
    time.sleep(0.3)
    assert standin.calls == [] and poll_keys(live.engine, "Unknown bot?") == []


def test_a_submission_in_the_installing_workspace_itself_is_unchanged(live_app, standin) -> None:
    host = standin.create_workspace(name="Plain Host")
    assert install(live_app.url, standin, host.team_id).response.status == 200
    standin.clear_calls()
    body = visitor_submits_poll_modal(standin, host.team_id, host, host.default_channel_id, "Same team?")
    assert samples.send(standin, body).status == 200
    posted = wait_for(lambda: standin.calls_for("chat.postMessage"))
    assert len(posted) == 1 and posted[0].ok and posted[0].team_id == host.team_id
    assert wait_for(lambda: poll_keys(live_app.engine, "Same team?")) == [workspace_key(None, host.team_id)]
