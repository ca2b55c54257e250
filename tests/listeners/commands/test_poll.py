"""`/poll`: usage in the ack, modal for no text, a poll from quoted text, not_in_channel handled."""

from __future__ import annotations

import sqlalchemy as sa

from bolt_app.features.polls import blocks
from bolt_app.features.polls.tables import polls
from tests.listeners.conftest import TEAM, acked_first


def command(text: str, **extra) -> dict:
    return {"command": "/poll", "text": text, "team_id": TEAM, "user_id": "U1", "channel_id": "C1",
            "trigger_id": "1.2.abc", "response_url": "https://hooks.example/r1", **extra}


def run(app, text: str, ack, client, context, **extra) -> None:
    app.handlers[("command", "/poll")](ack=ack, command=command(text, **extra), client=client, context=context)


def test_help_and_bad_text_answer_in_the_ack(app, ack, client, context, timeline) -> None:
    run(app, "help", ack, client, context)
    run(app, '"Only a question?"', ack, client, context)
    assert [c["response_type"] for c in ack.calls] == ["ephemeral", "ephemeral"]
    assert "/poll" in ack.calls[0]["text"] and "at least 2 options" in ack.calls[1]["text"]
    assert all(name == "ack" for name, _ in timeline)  # no Web API call


def test_no_text_opens_the_modal_in_this_channel(app, ack, client, context, timeline) -> None:
    run(app, "", ack, client, context)
    assert acked_first(timeline) and ack.calls == [{}]
    (opened,) = client.of("views_open")
    assert opened["trigger_id"] == "1.2.abc" and opened["view"]["callback_id"] == blocks.MODAL_CALLBACK_ID
    channel = opened["view"]["blocks"][-1]["element"]
    assert channel["initial_conversation"] == "C1"


def test_quoted_text_posts_a_poll_once(app, ack, client, context, timeline, features) -> None:
    run(app, '"Lunch?" "Pizza" "Sushi"', ack, client, context)
    run(app, '"Lunch?" "Pizza" "Sushi"', ack, client, context)  # same trigger_id delivered again
    assert acked_first(timeline)
    (posted,) = client.of("chat_postMessage")
    assert posted["channel"] == "C1" and "Lunch?" in posted["text"]
    with features.polls.service.engine.connect() as conn:
        (row,) = conn.execute(sa.select(polls)).all()
    assert row.message_ts is not None and row.workspace_key == f":{TEAM}"


def test_not_in_channel_discards_the_poll_and_says_how_to_fix_it(app, ack, client, context, features) -> None:
    client.errors["chat_postMessage"] = "not_in_channel"
    run(app, '"Lunch?" "Pizza" "Sushi"', ack, client, context)
    ((url, payload),) = features.polls.responses
    assert url == "https://hooks.example/r1" and payload["response_type"] == "ephemeral"
    assert "/invite @Workspace Helper" in payload["text"]
    with features.polls.service.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(polls)).scalar_one() == 0
