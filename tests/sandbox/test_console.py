"""The console's API against a stand-in and a tiny recording "app": what it sends is what Slack
sends (signed, Slack's payload shapes), what it shows never holds a full token, and only the
console's own page can drive it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qs

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth import AuthorizeUrlGenerator

from slack_standin import SlackStandIn, console_store
from slack_standin.console import Console
from slack_standin.harness import Browser, query_of
from bolt_app.web import verify_signature

SIGNING_SECRET = "console-test-signing-secret"


class RecordingApp:
    """Answers every signed request with `reply` and keeps the decoded payloads."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.reply: bytes = b""
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert verify_signature(SIGNING_SECRET.encode(), body, self.headers["X-Slack-Request-Timestamp"],
                                        self.headers["X-Slack-Signature"])
                if self.headers["Content-Type"].startswith("application/json"):
                    payload = json.loads(body)
                else:
                    form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                    payload = json.loads(form["payload"]) if "payload" in form else form
                recorder.received.append(payload)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(recorder.reply)))
                self.end_headers()
                self.wfile.write(recorder.reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def setup() -> Iterator[tuple[SlackStandIn, RecordingApp, Any, str]]:
    app = RecordingApp()
    with SlackStandIn(client_id="1.2", client_secret="console-test-client-secret", signing_secret=SIGNING_SECRET) as slack:
        slack.request_url = app.url + "/slack/events"
        slack.console = Console(
            slack, app_url=app.url, bot_name="Helper",
            commands=[{"command": "/poll", "description": "Create a poll"}],
            shortcuts=[{"name": "Create a poll", "type": "global", "callback_id": "poll_create"}],
        )
        ws = slack.create_workspace(name="Acme")
        url = AuthorizeUrlGenerator(client_id="1.2", scopes=["chat:write"], authorization_url=slack.authorize_url,
                                    redirect_uri=app.url + "/slack/oauth_redirect").generate(state="s")
        code = query_of(slack.approve(url, team_id=ws.team_id))["code"]
        token = WebClient(base_url=slack.api_url).oauth_v2_access(
            client_id="1.2", client_secret="console-test-client-secret", code=code)["access_token"]
        yield slack, app, ws, token
    app.server.shutdown()
    app.server.server_close()


def call(slack: SlackStandIn, action: str, body: dict[str, Any], headers: dict[str, str] | None = None):
    return Browser().request("POST", f"{slack.url}/console/api/{action}", body=json.dumps(body).encode(),
                             headers=headers or {"Content-Type": "application/json"})


def state(slack: SlackStandIn, ws) -> dict[str, Any]:
    return Browser().get(f"{slack.url}/console/api/state?team={ws.team_id}").json()


def test_messages_mentions_buttons_and_overflow_menus_are_sent_like_slack(setup) -> None:
    slack, app, ws, token = setup
    user = ws.installer_user_id

    # A typed mention becomes an app_mention with <@BOT>, the rest escaped like Slack's client does.
    assert call(slack, "send", {"team": ws.team_id, "user": user, "text": "@helper is 1 < 2 & 3?"}).status == 200
    event = app.received[-1]["event"]
    assert event["type"] == "app_mention" and event["user"] == user and event["channel"] == ws.default_channel_id
    assert event["text"] == f"<@{ws.bot_user_id}> is 1 &lt; 2 &amp; 3?"
    assert state(slack, ws)["workspace"]["timeline"][0]["text"] == event["text"]

    # The app posts Block Kit; a button click and an overflow choice go back as block_actions.
    blocks = [{"type": "section", "block_id": "b1", "text": {"type": "mrkdwn", "text": "*Hi*"},
               "accessory": {"type": "overflow", "action_id": "more",
                             "options": [{"text": {"type": "plain_text", "text": "Edit"}, "value": "edit"}]}},
              {"type": "actions", "block_id": "b2", "elements": [
                  {"type": "button", "action_id": "go", "value": "v1", "text": {"type": "plain_text", "text": "Go"}}]}]
    posted = WebClient(token=token, base_url=slack.api_url).chat_postMessage(
        channel=ws.default_channel_id, text="hi", blocks=blocks)
    option = blocks[0]["accessory"]["options"][0]
    for action in ({"type": "overflow", "action_id": "more", "block_id": "b1", "selected_option": option},
                   {"type": "button", "action_id": "go", "block_id": "b2", "value": "v1", "text": blocks[1]["elements"][0]["text"]}):
        answer = call(slack, "action", {"team": ws.team_id, "user": user, "channel": ws.default_channel_id,
                                        "message_ts": posted["ts"], "action": action}).json()
        assert answer["status"] == 200
        payload = app.received[-1]
        assert payload["type"] == "block_actions" and payload["user"]["id"] == user
        assert payload["team"]["id"] == ws.team_id and payload["trigger_id"] and payload["response_url"]
        assert payload["container"] == {"type": "message", "message_ts": posted["ts"],
                                        "channel_id": ws.default_channel_id, "is_ephemeral": False}
        assert payload["message"]["blocks"] == blocks
        sent = payload["actions"][0]
        assert {k: sent[k] for k in action} == action and sent["action_ts"]

    # A slash command's answer in the acknowledgement is shown to that user only.
    app.reply = json.dumps({"response_type": "ephemeral", "text": "Usage: /poll …"}).encode()
    assert call(slack, "send", {"team": ws.team_id, "user": user, "text": "/poll help"}).json()["sent"] == "slash_command"
    assert app.received[-1]["command"] == "/poll" and app.received[-1]["text"] == "help"
    timeline = state(slack, ws)["workspace"]["timeline"]
    assert timeline[-1]["kind"] == "ack" and timeline[-1]["only_you"] and timeline[-1]["text"] == "Usage: /poll …"
    refused = call(slack, "send", {"team": ws.team_id, "user": user, "text": "/nope"})
    assert refused.status == 400 and "/nope is not a command" in refused.json()["error"]

    # The log: every call, tokens by their last four characters, never in full.
    log = state(slack, ws)["log"]
    assert [e["method"] for e in log if e["dir"] == "api"] == ["oauth.v2.access", "chat.postMessage"]
    assert {e["token"] for e in log if e.get("token")} == {f"…{token[-4:]}"}
    assert token not in json.dumps(state(slack, ws))


def test_modals_submit_with_errors_update_and_close(setup) -> None:
    slack, app, ws, token = setup
    user = ws.installer_user_id
    app.reply = b""
    call(slack, "shortcut", {"team": ws.team_id, "user": user, "callback_id": "poll_create"})
    trigger = app.received[-1]["trigger_id"]
    assert app.received[-1]["type"] == "shortcut"
    modal = {"type": "modal", "callback_id": "form", "title": {"type": "plain_text", "text": "Form"},
             "submit": {"type": "plain_text", "text": "Save"},
             "blocks": [{"type": "input", "block_id": "q", "label": {"type": "plain_text", "text": "Q"},
                         "element": {"type": "plain_text_input", "action_id": "v"}}]}
    opened = WebClient(token=token, base_url=slack.api_url).views_open(trigger_id=trigger, view=modal)["view"]
    shown = state(slack, ws)["workspace"]["modal"]
    assert shown["id"] == opened["id"] and shown["callback_id"] == "form"

    values = {"q": {"v": {"type": "plain_text_input", "value": "x"}}}
    app.reply = json.dumps({"response_action": "errors", "errors": {"q": "Too short"}}).encode()
    answer = call(slack, "submit", {"team": ws.team_id, "user": user, "view_id": opened["id"], "values": values}).json()
    assert answer["result"] == "errors" and answer["errors"] == {"q": "Too short"}
    submitted = app.received[-1]
    assert submitted["type"] == "view_submission" and submitted["view"]["state"] == {"values": values}
    assert submitted["view"]["id"] == opened["id"] and submitted["view"]["callback_id"] == "form"

    app.reply = json.dumps({"response_action": "update", "view": {**modal, "title": {"type": "plain_text", "text": "Step 2"}}}).encode()
    assert call(slack, "submit", {"team": ws.team_id, "user": user, "view_id": opened["id"], "values": values}).json()["result"] == "updated"
    assert state(slack, ws)["workspace"]["modal"]["title"]["text"] == "Step 2"

    app.reply = b""
    assert call(slack, "submit", {"team": ws.team_id, "user": user, "view_id": opened["id"], "values": values}).json()["result"] == "closed"
    assert state(slack, ws)["workspace"]["modal"] is None


def test_fast_forward_uninstall_and_persistence(setup, tmp_path) -> None:
    slack, app, ws, token = setup
    client = WebClient(token=token, base_url=slack.api_url)
    assert call(slack, "fast_forward", {"team": ws.team_id}).json()["expired"] == 1
    with pytest.raises(SlackApiError) as expired:
        client.auth_test()
    assert expired.value.response["error"] == "token_expired"

    # Saved and restored: the same workspaces, users and tokens in a fresh stand-in.
    path = tmp_path / "state.json"
    console_store.save(slack, path)
    assert path.stat().st_mode & 0o077 == 0
    fresh = SlackStandIn()
    assert console_store.load(fresh, path)
    assert [w.team_id for w in fresh.workspaces] == [ws.team_id] and fresh.workspace(ws.team_id).installed
    assert fresh.token_info(token)["team_id"] == ws.team_id

    answer = call(slack, "uninstall", {"team": ws.team_id}).json()
    assert answer["status"] == 200 and app.received[-1]["event"]["type"] == "app_uninstalled"
    assert not slack.workspace(ws.team_id).installed
    assert call(slack, "send", {"team": ws.team_id, "user": ws.installer_user_id, "text": "/poll"}).status == 400


def test_only_the_console_page_can_drive_it(setup) -> None:
    slack, _, ws, _ = setup
    body = {"team": ws.team_id, "user": ws.installer_user_id, "text": "hi"}
    assert call(slack, "send", body, {"Content-Type": "text/plain"}).status == 403
    assert call(slack, "send", body, {"Content-Type": "application/json", "Origin": "http://evil.example"}).status == 403
    assert call(slack, "send", body, {"Content-Type": "application/json", "Origin": slack.url}).status == 200
    assert Browser().get(f"{slack.url}/console/api/state", headers={"Host": "evil.example"}).status == 421
    page = Browser().get(slack.url + "/")
    assert page.status == 200 and "script-src 'self'" in page.header("Content-Security-Policy")
