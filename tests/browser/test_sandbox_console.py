"""The sandbox's web console in a real browser (Debian's Chromium through Playwright): install a
workspace through the real OAuth pages, mention the bot, create a poll with `/poll`, vote, then
fast-forward the tokens and watch the app rotate them exactly once.

The sandbox runs as `python main.py sandbox` does (`slack_standin.sandbox.Sandbox`: the stand-in with
its console in this process, the app as a gunicorn server process), in a temporary folder.
Every console state passes the accessibility smoke check at desktop and phone width and is saved
under test-output/screenshots/<test>/.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from bolt_app import manifest
from slack_standin.sandbox import Sandbox

pytestmark = pytest.mark.slow

APP_NAME = manifest.app_name()
BOT_NAME = "Workspace Helper"  # manifest features.bot_user.display_name


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


@pytest.fixture
def sandbox(tmp_path):
    with Sandbox(tmp_path / "sandbox", port=0, app_port=0) as running:
        yield running


def send(page: Any, text: str) -> None:
    page.get_by_label(re.compile(r"^Message #general")).fill(text)
    page.get_by_role("button", name="Send", exact=True).click()


def refresh_calls(standin) -> list:
    return [c for c in standin.calls_for("oauth.v2.access") if c.params.get("grant_type") == "refresh_token"]


def test_install_mention_poll_vote_and_rotation_from_the_console(browser_session, sandbox) -> None:
    standin = sandbox.standin
    page = browser_session.new_page()
    page.goto(sandbox.console_url)
    expect(page.get_by_role("heading", level=1)).to_have_text("Slack sandbox")
    expect(page.get_by_role("heading", name="No workspace yet")).to_be_visible()
    browser_session.check(page, "console-empty")

    # "Install into a new workspace": the app's install page opens in a new tab, then the stand-in's
    # consent screen (the new workspace preselected), the app's callback and its success page.
    page.get_by_label("New workspace name (optional)").fill("Acme")
    with page.context.expect_page() as opened:
        page.get_by_role("button", name="Install into a new workspace").click()
    install = opened.value
    install.wait_for_url(re.compile(r"/slack/install\?team=T\w+$"))
    expect(install.get_by_role("heading", level=1)).to_have_text(f"Add {APP_NAME} to Slack")
    install.get_by_role("link", name="Add to Slack").click()
    install.wait_for_url(re.compile(r"/oauth/v2/authorize\?"))
    (workspace,) = standin.workspaces
    expect(install.get_by_label("Workspace", exact=True)).to_have_value(workspace.team_id)
    install.get_by_role("button", name="Allow").click()
    install.wait_for_url(re.compile(r"/slack/oauth_redirect\?code="))
    expect(install.get_by_role("heading", level=1)).to_have_text(f"{APP_NAME} is installed in Acme")
    install.close()

    # The console follows along: the workspace is installed and selected.
    expect(page.get_by_role("heading", name=f"Acme ({workspace.team_id})")).to_be_visible()
    expect(page.get_by_text("The app is installed")).to_be_visible()
    timeline = page.get_by_role("log", name="Messages")

    # Mention the bot: it answers in the thread.
    send(page, f"@{BOT_NAME} hello")
    reply = timeline.locator("li.msg.reply").filter(has_text="I run polls in this workspace")
    expect(reply).to_have_count(1)
    expect(timeline.locator("li.msg").first.locator(".mention")).to_have_text(f"@{BOT_NAME}")

    # A poll from the command's text, then a vote with its button.
    send(page, '/poll "Lunch?" "Pizza" "Sushi"')
    poll = timeline.locator("li.msg").filter(has_text="Lunch?")
    expect(poll.get_by_role("button", name="Pizza")).to_be_visible()
    expect(poll.get_by_role("button", name="Sushi")).to_be_visible()
    expect(poll).to_contain_text("0 people voted")
    poll.get_by_role("button", name="Pizza").click()
    expect(poll).to_contain_text("1 person voted")
    expect(poll.locator(".bk-section").filter(has_text="Pizza")).to_contain_text("1 vote")
    expect(poll.locator(".bk-section").filter(has_text="Pizza")).to_contain_text("100%")
    browser_session.check(page, "console-poll")

    # The poll form (views.open) as a modal: inline errors from the app, then a valid submission.
    send(page, "/poll")
    dialog = page.get_by_role("dialog", name="Create a poll")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Post in")).to_have_value(workspace.default_channel_id)
    dialog.get_by_role("button", name="Post poll").click()
    expect(dialog.get_by_text("Give at least 2 options.")).to_be_visible()
    browser_session.check(page, "console-modal-errors")
    dialog.get_by_label("Question").fill("Tea or coffee?")
    dialog.get_by_label("Options").fill("Tea\nCoffee")
    dialog.get_by_role("button", name="Post poll").click()
    expect(dialog).to_be_hidden()
    expect(timeline.locator("li.msg").filter(has_text="Tea or coffee?").get_by_role("button", name="Coffee")).to_be_visible()

    # App Home: app_home_opened, and the view the app published.
    page.get_by_role("tab", name="App Home").click()
    expect(page.locator("#home-view")).to_contain_text("Your open polls")
    expect(page.locator("#home-view")).to_contain_text("Tea or coffee?")
    browser_session.check(page, "console-home")
    page.get_by_role("tab", name="#general").click()

    # Fast-forward: the stand-in expires the tokens; the app's next call gets token_expired and it
    # rotates once through its single-flight path, then the reply goes out with the new token.
    assert refresh_calls(standin) == []
    page.get_by_role("button", name="Fast-forward tokens").click()
    expect(page.get_by_role("status")).to_contain_text("Expired 1 token(s)")
    send(page, f"@{BOT_NAME} are you still there?")
    expect(reply).to_have_count(2)
    log = page.locator("#log")
    expect(log.locator('tr[data-refresh="true"]')).to_have_count(1)
    expect(log.locator('tr[data-method="chat.postMessage"]').filter(has_text="token_expired")).to_have_count(1)
    browser_session.check(page, "console-rotated")
    assert len(refresh_calls(standin)) == 1
    # Tokens appear in the log by their last four characters only.
    shown = {cell.strip() for cell in log.locator("td:nth-child(4) code").all_inner_texts()}
    assert shown and all(re.fullmatch(r"…\S{4}", value) for value in shown), shown
