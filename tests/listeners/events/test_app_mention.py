"""`app_mention`: a short help message in the thread; a retried delivery answers once."""

from __future__ import annotations

from slack_bolt import BoltRequest

from tests.listeners.conftest import TEAM


def delivery(body: dict, retry_num: int | None = None) -> BoltRequest:
    headers = {"x-slack-retry-num": [str(retry_num)]} if retry_num is not None else {}
    return BoltRequest(body=body, headers=headers, mode="socket_mode")


def test_help_in_thread_once_per_event(app, client, context, ack, timeline) -> None:
    event = {"type": "app_mention", "user": "U1", "channel": "C1", "ts": "1.5", "text": "<@UBOT> hi"}
    body = {"type": "event_callback", "team_id": TEAM, "event_id": "Ev42", "event": event}
    handler = app.handlers[("event", "app_mention")]
    for retry in (None, 1):  # the original and Slack's retry
        handler(event=event, body=body, client=client, context=context, ack=ack, request=delivery(body, retry))
    (reply,) = client.of("chat_postMessage")
    assert timeline[0][0] == "ack"  # answered before the Web API call
    assert reply["channel"] == "C1" and reply["thread_ts"] == "1.5"
    assert reply["text"].startswith("Hi <@U1>!") and "/poll" in reply["text"]
    handler(event=event, body={**body, "event_id": "Ev43"}, client=client, context=context, ack=ack,
            request=delivery(body))
    assert len(client.of("chat_postMessage")) == 2


def test_a_retry_that_arrives_first_is_answered_once(app, client, context, ack) -> None:
    event = {"type": "app_mention", "user": "U1", "channel": "C1", "ts": "2.5", "text": "<@UBOT> hi"}
    body = {"type": "event_callback", "team_id": TEAM, "event_id": "Ev77", "event": event}
    handler = app.handlers[("event", "app_mention")]
    for retry in (1, None):  # the retry overtakes the (slow) original
        handler(event=event, body=body, client=client, context=context, ack=ack, request=delivery(body, retry))
    assert len(client.of("chat_postMessage")) == 1
