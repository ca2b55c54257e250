"""Request verification and malformed input: 401/4xx, nothing processed, server keeps serving."""

from __future__ import annotations

import json
import time

from tests.support import Browser, install, signed_post, wait_for


def test_bad_signatures_stale_timestamps_and_malformed_bodies(standin, app_server_factory, sqlite_url) -> None:
    server = app_server_factory(sqlite_url)
    ws = standin.create_workspace()
    assert install(server.url, standin, ws.team_id).response.status == 200
    standin.clear_calls()
    url = server.events_url
    event = {
        "type": "event_callback", "team_id": ws.team_id, "api_app_id": standin.app_id, "event_id": "Ev1",
        "event": {"type": "app_mention", "user": "U1", "text": f"<@{ws.bot_user_id}> hi", "channel": ws.default_channel_id, "ts": "1.1"},
        "authorizations": [{"team_id": ws.team_id, "user_id": ws.bot_user_id, "is_bot": True, "is_enterprise_install": False}],
    }
    body = json.dumps(event).encode()

    # Missing signature headers.
    assert Browser().request("POST", url, body=body, headers={"Content-Type": "application/json"}).status == 401
    # Wrong secret.
    assert signed_post(url, body, "application/json", secret="wrong-secret").status == 401
    # Stale timestamp (older than five minutes), correctly signed.
    assert signed_post(url, body, "application/json", timestamp=int(time.time()) - 301).status == 401
    # Timestamp in the future beyond the window.
    assert signed_post(url, body, "application/json", timestamp=int(time.time()) + 301).status == 401
    # Garbage signature header.
    garbage = {"X-Slack-Signature": "v0=zz", "X-Slack-Request-Timestamp": "not-a-number", "Content-Type": "application/json"}
    assert Browser().request("POST", url, body=body, headers=garbage).status == 401

    # Malformed bodies: never a 500.
    for payload, ctype in [
        (b"{not json", "application/json"),
        (b"payload=%7Bbroken", "application/x-www-form-urlencoded"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"", "application/json"),
        (b"[1,2,3]", "application/json"),
    ]:
        status = signed_post(url, payload, ctype).status
        assert 400 <= status < 500, (payload, status)
    # Oversized body: refused before it is read.
    assert signed_post(url, b"x" * (1024 * 1024 + 10), "application/json").status == 413
    # Wrong method and unknown path.
    assert Browser().get(url).status == 405
    assert Browser().get(f"{server.url}/nope").status == 404

    # Nothing was processed: each of the five signature failures was refused before Bolt saw the
    # body (the line is logged on that path, before the answer), so no listener can still be running.
    assert server.logs().count("Refused a request with a missing, invalid or stale Slack signature") == 5
    assert standin.calls_for("chat.postMessage") == []

    # The same event correctly signed still works: the server kept serving.
    assert signed_post(url, body, "application/json").status == 200
    assert wait_for(lambda: standin.calls_for("chat.postMessage"))
    assert len(standin.calls_for("chat.postMessage")) == 1
    assert Browser().get(f"{server.url}/healthz").status == 200
    assert "Traceback" not in server.logs()
