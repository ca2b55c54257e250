"""Modal submission: inline errors in the ack, or close and post (with Slack's response_url on failure)."""

from __future__ import annotations

from bolt_app.features.polls import blocks
from tests.listeners import payloads
from tests.listeners.conftest import TEAM, acked_first


def submit(app, ack, client, context, values, response_urls=None) -> None:
    body = payloads.view_submission(TEAM, "U1", {"id": "V1", **blocks.poll_modal()}, values)
    if response_urls is not None:
        body["response_urls"] = response_urls
    app.handlers[("view_submission", blocks.MODAL_CALLBACK_ID)](
        ack=ack, body=body, view=body["view"], client=client, context=context)


def test_invalid_input_is_answered_inline(app, ack, client, context, timeline) -> None:
    submit(app, ack, client, context, payloads.modal_values("x" * 301, "a\nb\nA", channel_id=None))
    (answer,) = ack.calls
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {blocks.B_QUESTION, blocks.B_OPTIONS, blocks.B_CHANNEL}
    assert [name for name, _ in timeline] == ["ack"]


def test_valid_input_closes_the_modal_then_posts(app, ack, client, context, timeline) -> None:
    submit(app, ack, client, context, payloads.modal_values("Lunch?", "Pizza\nSushi", multiple=True, channel_id="C7"))
    assert acked_first(timeline) and ack.calls == [{}]
    (posted,) = client.of("chat_postMessage")
    assert posted["channel"] == "C7" and "Choose any number" in payloads.all_text(posted["blocks"])
    # The same view delivered again posts nothing more.
    submit(app, ack, client, context, payloads.modal_values("Lunch?", "Pizza\nSushi", channel_id="C7"))
    assert len(client.of("chat_postMessage")) == 1


def test_post_failure_answers_through_the_channels_response_url(app, ack, client, context, features) -> None:
    client.errors["chat_postMessage"] = "channel_not_found"
    urls = [{"block_id": blocks.B_CHANNEL, "action_id": "value", "channel_id": "C7", "response_url": "https://r/7"}]
    submit(app, ack, client, context, payloads.modal_values("Lunch?", "Pizza\nSushi", channel_id="C7"), urls)
    ((url, payload),) = features.polls.responses
    assert url == "https://r/7" and "/invite" in payload["text"]
