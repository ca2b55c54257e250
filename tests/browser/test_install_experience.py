"""The install experience in a real browser: Debian's Chromium driven by Playwright against a real
`python main.py` (gunicorn) and the local Slack stand-in, clicking what an admin clicks.

Every page on the way (install, the stand-in's consent screen, success, failures) passes the
accessibility smoke check at desktop and phone width, makes no request off this machine and is
saved as a screenshot under test-output/screenshots/<test>/.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from bolt_app import database, manifest
from bolt_app.oauth.scope_descriptions import describe_scopes

pytestmark = pytest.mark.slow

APP_NAME = manifest.app_name()
STATE_COOKIE = "slack-app-oauth-state"
CONSENT_URL = re.compile(r"/oauth/v2/authorize\?")
CALLBACK_URL = re.compile(r"/slack/oauth_redirect\?")


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def stored_installations(url: str) -> list[dict[str, Any]]:
    engine = database.create_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT team_id, team_name, app_id, bot_user_id FROM slack_installations ORDER BY id")
            ).mappings().all()
            bots = conn.execute(sa.text("SELECT COUNT(*) FROM slack_bots")).scalar()
    finally:
        engine.dispose()
    assert bots == len({row["team_id"] for row in rows})  # one bot row per installed workspace
    return [dict(row) for row in rows]


def open_install_page(page: Any, server: Any) -> None:
    response = page.goto(f"{server.url}/slack/install")
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Add {APP_NAME} to Slack")


def add_to_slack(page: Any) -> None:
    """Click the button on the install page and arrive on the stand-in's consent screen."""
    page.get_by_role("link", name="Add to Slack").click()
    page.wait_for_url(CONSENT_URL)
    expect(page.get_by_role("button", name="Allow")).to_be_visible()


def choose_and_allow(page: Any, team_id: str) -> None:
    page.get_by_label("Workspace", exact=True).select_option(team_id)
    page.get_by_role("button", name="Allow").click()


def expect_success(page: Any, team_name: str) -> None:
    page.wait_for_url(CALLBACK_URL)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{APP_NAME} is installed in {team_name}")


def live_states(context: Any) -> list[str]:
    """OAuth states this browser still holds (a finished install leaves only a "used" mark)."""
    return [c["value"] for c in context.cookies() if c["name"].startswith(STATE_COOKIE) and c["value"] != "used"]


def test_add_to_slack_approve_and_land_on_success(
    browser_session, standin, app_server_factory, sqlite_url
) -> None:
    server = app_server_factory(sqlite_url)
    workspace = standin.create_workspace(name="Acme Corp")
    page = browser_session.new_page()

    # The install page: name, icon, what the app can do in plain words, one clear button.
    open_install_page(page, server)
    expect(page).to_have_title(f"Install {APP_NAME}")
    icon = page.locator("img.app-icon")
    expect(icon).to_be_visible()
    assert icon.evaluate("img => img.complete && img.naturalWidth") >= 512  # the data: URL loaded under the CSP
    bot_scopes, _ = manifest.manifest_scopes()
    for line in describe_scopes(bot_scopes):
        expect(page.get_by_role("listitem").filter(has_text=line)).to_be_visible()
    for scope in bot_scopes:
        expect(page.get_by_text(scope, exact=True)).to_have_count(0)  # plain words, not scope names
    browser_session.check(page, "install")

    # Slack's consent screen (the stand-in's), then Allow.
    add_to_slack(page)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Install app")
    browser_session.check(page, "consent")
    choose_and_allow(page, workspace.team_id)

    # The success page: workspace name, "Open Slack" deep link into this workspace and app, next steps.
    expect_success(page, "Acme Corp")
    open_slack = page.get_by_role("link", name="Open Slack")
    expect(open_slack).to_have_attribute("href", f"slack://app?team={workspace.team_id}&id={standin.app_id}")
    expect(page.get_by_role("heading", name="Next steps")).to_be_visible()
    expect(page.get_by_role("listitem").filter(has_text="Invite it to a channel")).to_be_visible()
    browser_session.check(page, "success")

    # Stored, once, and the browser holds no usable state any more.
    rows = stored_installations(sqlite_url)
    assert [(r["team_id"], r["team_name"], r["app_id"]) for r in rows] == [
        (workspace.team_id, "Acme Corp", standin.app_id)
    ]
    assert rows[0]["bot_user_id"]
    assert live_states(page.context) == []


def test_cancel_on_consent_shows_the_reason_and_retry_works(
    browser_session, standin, app_server_factory, sqlite_url
) -> None:
    server = app_server_factory(sqlite_url)
    workspace = standin.create_workspace(name="Retry Inc")
    page = browser_session.new_page()

    open_install_page(page, server)
    add_to_slack(page)
    page.get_by_role("button", name="Cancel").click()

    page.wait_for_url(re.compile(r"/slack/oauth_redirect\?error=access_denied"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Installation cancelled")
    expect(page.get_by_text("nothing was added to your workspace")).to_be_visible()
    expect(page.get_by_text("access_denied")).to_be_visible()  # the code, for asking for help
    browser_session.check(page, "failure-cancelled")
    assert stored_installations(sqlite_url) == []

    # "Try again" starts over and this time goes all the way.
    page.get_by_role("link", name="Try again").click()
    page.wait_for_url(f"{server.url}/slack/install")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Add {APP_NAME} to Slack")
    add_to_slack(page)
    choose_and_allow(page, workspace.team_id)
    expect_success(page, "Retry Inc")
    assert [r["team_id"] for r in stored_installations(sqlite_url)] == [workspace.team_id]


def test_reloading_the_callback_is_refused_and_stores_nothing(
    browser_session, standin, app_server_factory, sqlite_url
) -> None:
    server = app_server_factory(sqlite_url)
    workspace = standin.create_workspace(name="Replay Ltd")
    page = browser_session.new_page()
    open_install_page(page, server)
    add_to_slack(page)
    choose_and_allow(page, workspace.team_id)
    expect_success(page, "Replay Ltd")
    callback_url = page.url
    assert len(stored_installations(sqlite_url)) == 1

    # The admin reloads the success page: the state was single-use, nothing is installed again.
    response = page.reload()
    assert response is not None and response.status == 401
    expect(page.get_by_role("heading", level=1)).to_have_text("This install link was already used")
    expect(page.get_by_text("If you just installed the app")).to_be_visible()
    expect(page.get_by_role("link", name="Try again")).to_have_attribute("href", "/slack/install")
    browser_session.check(page, "failure-reloaded")
    page.reload()  # and again: same answer
    expect(page.get_by_role("heading", level=1)).to_have_text("This install link was already used")

    # Someone else who got hold of the URL (another browser profile, no cookie) fares no better.
    other = browser_session.new_page()
    response = other.goto(callback_url)
    assert response is not None and response.status == 400
    expect(other.get_by_role("heading", level=1)).to_have_text("Please finish in the same browser")
    browser_session.check(other, "failure-other-browser")

    assert len(stored_installations(sqlite_url)) == 1


@pytest.mark.parametrize("tabs", ["one-browser", "two-browsers"])
def test_two_tabs_install_two_workspaces_at_once(
    browser_session, standin, app_server_factory, sqlite_url, tabs
) -> None:
    """Both installs are in flight together: both consent screens are open before either is approved.

    ``one-browser``: two tabs of the same browser (shared cookies), the admin of two workspaces.
    ``two-browsers``: two admins on separate browser profiles.
    """
    server = app_server_factory(sqlite_url)
    first_ws = standin.create_workspace(name="First Workspace")
    second_ws = standin.create_workspace(name="Second Workspace")
    if tabs == "one-browser":
        context = browser_session.new_context()
        first, second = context.new_page(), context.new_page()
    else:
        first, second = browser_session.new_page(), browser_session.new_page()

    for page in (first, second):
        open_install_page(page, server)
        add_to_slack(page)
    # Approve in the opposite order to the one the installs were started in.
    for page, workspace in ((second, second_ws), (first, first_ws)):
        page.get_by_label("Workspace", exact=True).select_option(workspace.team_id)
        page.get_by_role("button", name="Allow").click(no_wait_after=True)
    expect_success(second, "Second Workspace")
    expect_success(first, "First Workspace")
    browser_session.check(first, "success-first")
    browser_session.check(second, "success-second")

    rows = stored_installations(sqlite_url)
    assert sorted((r["team_id"], r["team_name"]) for r in rows) == sorted(
        [(first_ws.team_id, "First Workspace"), (second_ws.team_id, "Second Workspace")]
    )
    for context in {first.context, second.context}:
        assert live_states(context) == []
