"""Block Kit rendering: pure functions, within Slack's limits, graceful when large."""

from __future__ import annotations

import json
from datetime import datetime

from bolt_app.features.polls import blocks
from bolt_app.features.polls.domain import OPTION_MAX_CHARS, Poll, PollResults


def results(
    *,
    options=("Pizza", "Sushi"),
    voters=None,
    anonymous=False,
    multiple=False,
    closed=False,
    question="Lunch?",
    creator="U1",
    poll_id="p1",
) -> PollResults:
    voters = voters if voters is not None else tuple(() for _ in options)
    poll = Poll(
        poll_id=poll_id, creator_id=creator, channel_id="C1", message_ts="1.1", question=question,
        options=tuple(options), anonymous=anonymous, multiple_choice=multiple, revision=3,
        created_at=datetime(2026, 1, 2, 3, 4, 5), closed_at=datetime(2026, 1, 2, 4, 0, 0) if closed else None,
    )
    return PollResults(poll, tuple(tuple(v) for v in voters))


def texts(payload) -> list[str]:
    """Every text object's text, anywhere in the blocks."""
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text") and "text" in node:
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(payload)
    return found


def buttons(message) -> list[dict]:
    found = [b["accessory"] for b in message["blocks"] if b.get("accessory", {}).get("type") == "button"]
    for block in message["blocks"]:
        if block["type"] == "actions":
            found += block["elements"]
    return found


def assert_within_limits(payload, max_blocks: int) -> None:
    assert len(payload["blocks"]) <= max_blocks
    assert all(len(t) <= blocks.MAX_TEXT for t in texts(payload))
    for block in payload["blocks"]:
        for button in ([block["accessory"]] if "accessory" in block else []) + block.get("elements", []):
            if button.get("type") == "button":
                assert len(button["text"]["text"]) <= blocks.MAX_BUTTON_TEXT
    json.dumps(payload)  # serialisable as is


def test_open_poll_message_shows_counts_bars_voters_and_buttons() -> None:
    message = blocks.poll_message(results(voters=(("U2", "U3"), ("U4",))))
    assert_within_limits(message, blocks.MAX_MESSAGE_BLOCKS)
    body = "\n".join(texts(message))
    assert "Lunch?" in message["text"] and "*Lunch?*" in body
    assert "<@U2>, <@U3>" in body and "<@U4>" in body
    assert "67%" in body and "33%" in body and "2 votes" in body and "1 vote" in body
    assert "3 people voted" in body
    vote_buttons = [b for b in buttons(message) if b["action_id"].startswith(blocks.VOTE_ACTION_PREFIX)]
    assert [(b["action_id"], b["value"], b["text"]["text"]) for b in vote_buttons] == [
        ("poll_vote_0", "p1:0", "Pizza"),
        ("poll_vote_1", "p1:1", "Sushi"),
    ]
    close = [b for b in buttons(message) if b["action_id"] == blocks.CLOSE_ACTION_ID]
    assert close and close[0]["value"] == "p1" and "confirm" in close[0]


def test_anonymous_poll_hides_voters() -> None:
    message = blocks.poll_message(results(voters=(("U2",), ()), anonymous=True))
    assert "<@U2>" not in json.dumps(message)
    assert "1 vote" in "\n".join(texts(message))


def test_closed_poll_has_final_results_and_no_buttons() -> None:
    message = blocks.poll_message(results(voters=(("U2",), ("U3", "U4")), closed=True))
    assert buttons(message) == []
    body = "\n".join(texts(message))
    assert "Closed" in body and "final results" in body
    assert ":trophy: *Sushi*" in body and ":trophy: *Pizza*" not in body


def test_user_text_is_escaped() -> None:
    message = blocks.poll_message(results(question="<!channel> & you", options=("<@U9>", "b")))
    body = "\n".join(texts(message))
    assert "<!channel>" not in body and "&lt;!channel&gt; &amp; you" in body
    assert "&lt;@U9&gt;" in body


def test_large_poll_stays_within_limits() -> None:
    options = tuple(f"{i} " + "x" * (OPTION_MAX_CHARS - 2) for i in range(10))
    voters = tuple(tuple(f"U{i:02d}{j:05d}" for j in range(1500)) for i in range(10))
    message = blocks.poll_message(results(options=options, voters=voters, question="q" * 300, multiple=True))
    assert_within_limits(message, blocks.MAX_MESSAGE_BLOCKS)
    first_option = next(b for b in message["blocks"] if b.get("block_id") == "option_0")
    assert first_option["text"]["text"].endswith(" more")  # long voter lists end in "and N more"
    # More options than a valid poll has (defensive): still at most 50 blocks.
    many = tuple(f"option {i}" for i in range(80))
    assert_within_limits(blocks.poll_message(results(options=many)), blocks.MAX_MESSAGE_BLOCKS)
    # Longer text than the button allows is cut to 75 characters.
    long_label = blocks.poll_message(results(options=("y" * 200, "b")))
    assert len(buttons(long_label)[0]["text"]["text"]) == blocks.MAX_BUTTON_TEXT


def test_modal_and_reading_it_back() -> None:
    view = blocks.poll_modal(question="From a message &amp; more", channel_id="C9")
    assert view["type"] == "modal" and view["callback_id"] == blocks.MODAL_CALLBACK_ID
    assert len(view["blocks"]) <= blocks.MAX_VIEW_BLOCKS and len(view["title"]["text"]) <= blocks.MAX_TITLE
    by_id = {b["block_id"]: b for b in view["blocks"]}
    assert by_id[blocks.B_QUESTION]["element"]["initial_value"] == "From a message & more"
    channel = by_id[blocks.B_CHANNEL]["element"]
    assert channel["initial_conversation"] == "C9" and channel["response_url_enabled"] is True
    assert blocks.poll_modal()["blocks"][3]["element"]["default_to_current_conversation"] is True
    assert len(blocks.poll_modal(question="z" * 5000)["blocks"][0]["element"]["initial_value"]) == 300

    values = {
        blocks.B_QUESTION: {"value": {"type": "plain_text_input", "value": " Lunch? "}},
        blocks.B_OPTIONS: {"value": {"type": "plain_text_input", "value": "Pizza\n\n Sushi \n"}},
        blocks.B_SETTINGS: {"value": {"type": "checkboxes", "selected_options": [{"value": "anonymous"}]}},
        blocks.B_CHANNEL: {"value": {"type": "conversations_select", "selected_conversation": "C9"}},
    }
    entered = blocks.read_modal(values)
    assert entered.errors() == {}
    draft = entered.draft()
    assert (draft.question, draft.options, draft.anonymous, draft.multiple_choice) == ("Lunch?", ("Pizza", "Sushi"), True, False)
    assert entered.channel_id == "C9"

    errors = blocks.read_modal({blocks.B_OPTIONS: {"value": {"value": "same\nSame"}}}).errors()
    assert set(errors) == {blocks.B_QUESTION, blocks.B_OPTIONS, blocks.B_CHANNEL}


def test_home_view_lists_polls_and_degrades_when_many() -> None:
    open_polls = [results(voters=(("U2",), ()), poll_id="o1"), results(anonymous=True, poll_id="o2")]
    closed = [results(voters=((), ("U3",)), closed=True, poll_id="c1")]
    view = blocks.home_view("U1", open_polls, closed)
    assert view["type"] == "home"
    assert_within_limits(view, blocks.MAX_VIEW_BLOCKS)
    body = "\n".join(texts(view))
    assert "Your open polls" in body and "Recently closed" in body and ":trophy: Sushi" in body
    create = [e for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert create[0]["action_id"] == blocks.HOME_CREATE_ACTION_ID

    empty = "\n".join(texts(blocks.home_view("U1", [], [])))
    assert "no open polls" in empty

    many = [results(options=tuple(f"o{i}" for i in range(10)), poll_id=f"p{n}") for n in range(80)]
    crowded = blocks.home_view("U1", many, many[:5], open_total=120)
    assert_within_limits(crowded, blocks.MAX_VIEW_BLOCKS)
    assert "more not shown" in "\n".join(texts(crowded))


def test_texts() -> None:
    assert "/poll" in blocks.help_text("U1") and blocks.help_text("U1").startswith("Hi <@U1>!")
    assert "/invite @Workspace Helper" in blocks.not_in_channel_text("C1", "Workspace Helper")
    assert blocks.usage_text("Bad.").startswith("Bad.") and "/poll" in blocks.usage_text()
