"""The stand-in's Socket Mode: app-level tokens, apps.connections.open, the websocket wire format,
acks, and dropped connections — driven by a raw websocket client and by slack_sdk's built-in client."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth import AuthorizeUrlGenerator
from slack_sdk.socket_mode.builtin import SocketModeClient

from bolt_app.socket_mode import close_quickly
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from slack_standin import SlackStandIn, SocketDelivery
from slack_standin.harness import query_of, wait_for


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(client_id="111.222", client_secret="sek") as s:
        yield s


def open_url(slack: SlackStandIn, token: str | None = None) -> str:
    return WebClient(base_url=slack.api_url).apps_connections_open(app_token=token or slack.app_token)["url"]


def bot_token(slack: SlackStandIn, team_id: str) -> str:
    url = AuthorizeUrlGenerator(client_id="111.222", scopes=["chat:write"], authorization_url=slack.authorize_url,
                                redirect_uri="http://127.0.0.1:9/cb").generate(state="s")
    code = query_of(slack.approve(url, team_id=team_id))["code"]
    return WebClient(base_url=slack.api_url).oauth_v2_access(
        client_id="111.222", client_secret="sek", code=code, redirect_uri="http://127.0.0.1:9/cb"
    )["access_token"]


def test_apps_connections_open_takes_only_live_app_level_tokens(slack: SlackStandIn) -> None:
    ws = slack.create_workspace()
    assert slack.app_token.startswith("xapp-1-A0APP-")
    url = open_url(slack)
    assert url.startswith("ws://127.0.0.1:") and "/link/?ticket=" in url and "app_id=A0APP" in url
    call = slack.calls_for("apps.connections.open")[-1]
    assert call.ok and call.token_kind == "app"

    client = WebClient(base_url=slack.api_url)
    for token, error in ((bot_token(slack, ws.team_id), "not_allowed_token_type"), ("xapp-1-nope", "invalid_auth")):
        with pytest.raises(SlackApiError) as raised:
            client.apps_connections_open(app_token=token)
        assert raised.value.response["error"] == error
    # App-level tokens do nothing else.
    with pytest.raises(SlackApiError) as raised:
        WebClient(token=slack.app_token, base_url=slack.api_url).chat_postMessage(channel=ws.default_channel_id, text="x")
    assert raised.value.response["error"] == "not_allowed_token_type"

    second = slack.create_app_token()
    assert second != slack.app_token and open_url(slack, second)
    slack.revoke_app_token(second)
    with pytest.raises(SlackApiError) as raised:
        client.apps_connections_open(app_token=second)
    assert raised.value.response["error"] == "token_revoked"
    assert slack.expire_tokens() >= 1 and open_url(slack)  # app-level tokens do not expire


def test_hello_then_envelopes_in_slacks_format_and_acks_are_recorded(slack: SlackStandIn) -> None:
    ws = slack.create_workspace(name="Acme")
    slack.approve(AuthorizeUrlGenerator(client_id="111.222", scopes=["chat:write"], authorization_url=slack.authorize_url,
                                        redirect_uri="http://127.0.0.1:9/cb").generate(state="s"), team_id=ws.team_id)
    with connect(open_url(slack)) as sock:
        hello = json.loads(sock.recv(timeout=5))
        assert hello["type"] == "hello" and hello["num_connections"] == 1
        assert hello["connection_info"] == {"app_id": "A0APP"} and "debug_info" in hello
        assert slack.socket_connections[0]["open"]

        slack.socket_ack_timeout_seconds = 0  # send, then answer by hand below
        mention = slack.send_mention(ws, "hi", via="socket")
        command = slack.send_slash_command(ws, "/poll", "help", via="socket")
        click = slack.send_interactive(ws, {"type": "block_actions", "actions": [{"action_id": "a", "value": "1"}],
                                            "channel": {"id": ws.default_channel_id}}, via="socket")
        submission = slack.send_interactive(ws, {"type": "view_submission", "view": {"id": "V1"}}, via="socket")
        retried = slack.send_event(ws, {"type": "app_home_opened", "user": ws.installer_user_id}, retry_num=2,
                                   via="socket")
        received = [json.loads(sock.recv(timeout=5)) for _ in range(5)]

        assert [e["type"] for e in received] == ["events_api", "slash_commands", "interactive", "interactive",
                                                 "events_api"]
        for envelope in received:
            assert {"envelope_id", "payload", "type", "accepts_response_payload"} <= set(envelope)
        assert received[0]["payload"]["type"] == "event_callback"
        assert received[0]["payload"]["event"]["text"].startswith(f"<@{ws.bot_user_id}>")
        assert (received[0]["retry_attempt"], received[0]["retry_reason"]) == (0, "")
        assert (received[4]["retry_attempt"], received[4]["retry_reason"]) == (2, "timeout")
        # A slash command's payload is the same fields as the HTTP form, as a JSON object.
        assert received[1]["payload"]["command"] == "/poll" and received[1]["payload"]["text"] == "help"
        assert received[1]["payload"]["response_url"].startswith(slack.url) and received[1]["payload"]["trigger_id"]
        assert received[2]["payload"]["actions"][0]["action_id"] == "a" and received[2]["payload"]["team"]["id"] == ws.team_id
        assert [e["accepts_response_payload"] for e in received] == [False, True, False, True, False]
        # slack_sdk parses every one of them.
        assert all(SocketModeRequest.from_dict(e) is not None for e in received)
        assert [d.envelope_id for d in (mention, command, click, submission, retried)] == [e["envelope_id"] for e in received]
        assert mention.payload == received[0]["payload"] and not mention.acked and mention.status == 0

        sock.send(json.dumps({"envelope_id": received[1]["envelope_id"], "payload": {"text": "usage"}}))
        sock.send(json.dumps({"envelope_id": received[0]["envelope_id"]}))
        assert command.wait(5) and mention.wait(5)
        assert list(command) == [200, {}, b'{"text": "usage"}'] and command.json() == {"text": "usage"}
        assert mention.ack == {"envelope_id": received[0]["envelope_id"]} and mention.body == b""
        assert 0 <= mention.ack_seconds < 5
        acks = slack.socket_acks
        assert [a["envelope_id"] for a in acks] == [received[1]["envelope_id"], received[0]["envelope_id"]]
        assert acks[0]["payload"] == {"text": "usage"} and acks[1]["payload"] is None
        assert all(a["known"] and a["at"] >= mention.sent_at for a in acks)
        assert not click.acked and isinstance(click, SocketDelivery)


def test_tickets_are_single_use_and_expire(slack: SlackStandIn) -> None:
    url = open_url(slack)
    with connect(url) as sock:
        assert json.loads(sock.recv(timeout=5))["type"] == "hello"
        with pytest.raises(InvalidStatus):
            connect(url, open_timeout=5)
    slack.socket_ticket_lifetime_seconds = 0
    late = open_url(slack)
    time.sleep(0.05)
    with pytest.raises(InvalidStatus):
        connect(late, open_timeout=5)


def test_sending_without_a_connection_fails_fast_and_http_stays_the_default(slack: SlackStandIn) -> None:
    ws = slack.create_workspace()
    slack.socket_connect_wait_seconds = 0.1
    with pytest.raises(RuntimeError, match="no open Socket Mode connection"):
        slack.send_event(ws, {"type": "app_home_opened", "user": ws.installer_user_id}, via="socket")
    with pytest.raises(RuntimeError, match="request_url"):  # no via: HTTP, as before
        slack.send_event(ws, {"type": "app_home_opened", "user": ws.installer_user_id})


@pytest.mark.parametrize("how", ["abort", "close", "disconnect"])
def test_slack_sdk_builtin_client_reconnects_after_each_kind_of_drop(slack: SlackStandIn, how: str) -> None:
    ws = slack.create_workspace()
    client = SocketModeClient(app_token=slack.app_token, web_client=WebClient(base_url=slack.api_url),
                              ping_interval=1)
    handled: list[str] = []

    def on_request(c: SocketModeClient, req: SocketModeRequest) -> None:
        handled.append(req.payload["event"]["text"])
        c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

    client.socket_mode_request_listeners.append(on_request)
    try:
        client.connect()
        assert slack.wait_for_socket_connection(5)
        assert slack.send_event(ws, {"type": "app_mention", "text": "one", "channel": "C1"}, via="socket").acked
        dropped_at = time.time()
        assert slack.drop_socket_connections(how) == 1
        assert slack.wait_for_socket_connection(10, newer_than=dropped_at), slack.socket_connections
        delivery = slack.send_event(ws, {"type": "app_mention", "text": "two", "channel": "C1"}, via="socket")
        assert delivery.acked and delivery.ack_seconds < 3
        assert wait_for(lambda: handled == ["one", "two"], timeout=5), handled
        connections = slack.socket_connections
        assert len(slack.calls_for("apps.connections.open")) == 2
        wait_for(lambda: not slack.socket_connections[0]["open"], timeout=5)
        assert [c["open"] for c in slack.socket_connections] == [False, True], connections
    finally:
        close_quickly(client)


