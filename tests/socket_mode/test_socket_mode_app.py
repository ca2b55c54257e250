"""End to end over Socket Mode: the app as a process, Slack's deliveries over the stand-in's websocket,
answers through the Web API with the right workspace's token, OAuth installs over HTTP."""

from __future__ import annotations

import json
import re
import signal
import time
from typing import Any

from slack_standin import SlackStandIn, Workspace
from slack_standin.harness import AppProcess, Browser, install, wait_for
from tests.socket_mode.conftest import StartApp, single_workspace_bot_token

ACK_SECONDS = 3.0


def health(app: AppProcess) -> tuple[int, dict[str, Any]]:
    response = Browser().get(f"{app.url}/healthz")
    return response.status, response.json()


def replies(standin: SlackStandIn, method: str, ws: Workspace) -> list:
    return [c for c in standin.calls_for(method) if c.ok and c.team_id == ws.team_id]


def assert_every_envelope_acked_in_time(standin: SlackStandIn, *, refused: tuple[str, ...] = ()) -> None:
    deliveries = [d for d in standin.socket_deliveries if d.envelope_id not in refused]
    assert deliveries
    late = [(d.envelope["type"], d.ack_seconds) for d in deliveries if not d.acked or d.ack_seconds >= ACK_SECONDS]
    assert not late, late
    acked = {a["envelope_id"] for a in standin.socket_acks}
    assert {d.envelope_id for d in deliveries} <= acked


def vote_click(message: dict[str, Any], position: int) -> dict[str, Any]:
    """The block_actions payload Slack sends when someone clicks an option's button in a posted poll."""
    block = next(b for b in message["blocks"] if b.get("block_id") == f"option_{position}")
    button = block["accessory"]
    assert re.fullmatch(r"poll_vote_\d+", button["action_id"])
    return {
        "type": "block_actions",
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": message["channel"]},
        "channel": {"id": message["channel"], "name": "general"},
        "message": {"type": "message", "ts": message["ts"], "text": message["text"], "blocks": message["blocks"]},
        "actions": [{"type": "button", "action_id": button["action_id"], "block_id": block["block_id"],
                     "value": button["value"], "action_ts": f"{time.time():.6f}"}],
    }


def test_multi_workspace_installs_over_http_then_mentions_polls_and_votes_over_the_socket(
    standin: SlackStandIn, socket_app: StartApp
) -> None:
    app = socket_app()
    assert health(app) == (200, {"status": "ok", "database": "ok", "socket_mode": "connected"})
    # apps.connections.open went to SLACK_API_URL (the stand-in) with the app-level token.
    opened = standin.calls_for("apps.connections.open")
    assert len(opened) == 1 and opened[0].ok and opened[0].token == standin.app_token
    # Nothing is delivered over HTTP in Socket Mode, and nothing unsigned gets in that way.
    assert Browser().request("POST", f"{app.url}/slack/events", body=b'{"type": "event_callback"}').status == 404

    acme, globex = standin.create_workspace(name="Acme"), standin.create_workspace(name="Globex")
    for ws in (acme, globex):
        result = install(app.url, standin, ws.team_id)
        assert result.response.status == 200 and ws.name in result.response.text

    for ws in (acme, globex):
        assert standin.send_mention(ws, "hello over the socket").acked
    for ws in (acme, globex):
        [reply] = wait_for(lambda ws=ws: replies(standin, "chat.postMessage", ws))
        assert reply.token_kind == "bot" and standin.token_info(reply.token)["team_id"] == ws.team_id
        assert reply.params["channel"] == ws.default_channel_id and reply.params.get("thread_ts")

    # A slash command's immediate answer travels back in the ack's payload.
    usage = standin.send_slash_command(acme, "/poll", "help")
    assert usage.acked and "/poll" in usage.json()["text"]

    # /poll posts a poll with Acme's token; a click on an option is a vote, shown by updating the message.
    standin.clear_calls()
    assert standin.send_slash_command(acme, "/poll", '"Lunch?" "Pizza" "Tacos"').acked
    [posted] = wait_for(lambda: replies(standin, "chat.postMessage", acme))
    assert standin.token_info(posted.token)["team_id"] == acme.team_id
    [poll] = [m for m in standin.messages(acme.team_id) if "Lunch?" in json.dumps(m["blocks"])]
    assert standin.send_interactive(acme, vote_click(poll, 1)).acked
    # (Failed once in CI with no update after 10 s, not reproduced since: the app's log says why.)
    assert wait_for(lambda: replies(standin, "chat.update", acme)), (standin.calls, app.logs()[-4000:])
    updated = wait_for(lambda: next((m for m in standin.messages(acme.team_id) if m["ts"] == poll["ts"] and m["edited"]),
                                    None))
    assert "1 vote" in json.dumps(next(b for b in updated["blocks"] if b.get("block_id") == "option_1"))
    assert replies(standin, "chat.update", acme)[0].token == posted.token
    assert len(standin.messages(globex.team_id)) == 1  # only the answer to its mention

    assert_every_envelope_acked_in_time(standin)
    assert len(standin.socket_connections) == 1


def test_a_dropped_connection_is_reestablished_and_the_next_envelope_handled(
    standin: SlackStandIn, socket_app: StartApp
) -> None:
    app = socket_app()
    ws = standin.create_workspace(name="Acme")
    install(app.url, standin, ws.team_id)

    for round_, how in enumerate(("abort", "disconnect"), start=1):
        dropped_at = time.time()
        if how == "abort":
            # The network dies and Slack fails the first apps.connections.open: the app keeps trying.
            standin.set_failure("apps.connections.open", "internal_error")
        assert standin.drop_socket_connections(how) == 1
        if how == "abort":  # meanwhile /healthz says so
            assert wait_for(lambda: health(app) == (503, {"status": "unavailable", "database": "ok",
                                                           "socket_mode": "reconnecting"}), timeout=5)
        assert standin.wait_for_socket_connection(timeout=10, newer_than=dropped_at), standin.socket_connections
        assert time.time() - dropped_at < 10
        assert standin.send_mention(ws, f"still there? ({how})").acked
        assert wait_for(lambda round_=round_: len(replies(standin, "chat.postMessage", ws)) == round_)
        assert wait_for(lambda: health(app) == (200, {"status": "ok", "database": "ok", "socket_mode": "connected"}))

    # A fresh URL for every connection (plus the failed attempt).
    assert [c.ok for c in standin.calls_for("apps.connections.open")] == [True, False, True, True]
    assert_every_envelope_acked_in_time(standin)


def test_single_workspace_with_bot_and_app_tokens_and_sigterm_finishes_in_flight_work(
    standin: SlackStandIn, socket_app: StartApp
) -> None:
    ws = standin.create_workspace(name="Solo")
    token = single_workspace_bot_token(standin, ws.team_id)
    app = socket_app(bot_token=token)
    assert health(app)[1]["socket_mode"] == "connected"

    assert standin.send_mention(ws, "hi").acked
    [reply] = wait_for(lambda: replies(standin, "chat.postMessage", ws))
    assert reply.token == token
    # Unlike anything Slack sends: refused before Bolt, as the HTTP endpoint would (no ack, so no 200).
    bogus = standin.socket_send("events_api", {"type": "event_callback", "team_id": ws.team_id, "event": "x"},
                                wait=False)

    # SIGTERM while a mention's reply still waits on a slow Slack: the envelope was acked at once
    # (the reply is work after the answer), and shutdown lets that reply finish before it exits 0.
    standin.latency_seconds = 1.5
    standin.socket_ack_timeout_seconds = 0  # do not wait for the ack here
    slow = standin.send_mention(ws, "slow one")
    assert wait_for(lambda: slow.acked, timeout=1), app.logs()
    time.sleep(0.3)
    assert len(replies(standin, "chat.postMessage", ws)) == 1  # the slow reply is still in flight
    stopping_at = time.time()
    assert app.stop() == 0, app.logs()
    assert time.time() - stopping_at < 10
    [_, slow_reply] = replies(standin, "chat.postMessage", ws)
    assert slow_reply.token == token and slow.acked_at < slow_reply.at
    assert not any(c["open"] for c in standin.socket_connections)
    assert "Shut down cleanly" in app.logs()
    assert not bogus.acked and "Malformed Slack payload refused: event is not an object" in app.logs()
    assert_every_envelope_acked_in_time(standin, refused=(bogus.envelope_id,))


def test_a_refused_app_token_stops_the_app_with_a_configuration_error(
    standin: SlackStandIn, socket_app: StartApp
) -> None:
    try:
        socket_app(SLACK_APP_TOKEN="xapp-1-A0APP-0-not-a-real-token")
    except RuntimeError as error:
        assert "server exited with 2" in str(error)
        assert "SLACK_APP_TOKEN" in str(error) and "invalid_auth" in str(error)
        assert "not-a-real-token" not in str(error)  # the token itself is never logged
    else:
        raise AssertionError("the app started with a refused app token")


def test_sigint_exits_0_too(standin: SlackStandIn, socket_app: StartApp) -> None:
    app = socket_app()
    assert app.process is not None
    app.process.send_signal(signal.SIGINT)
    assert app.process.wait(timeout=15) == 0, app.logs()
    assert "SIGINT received" in app.logs()
