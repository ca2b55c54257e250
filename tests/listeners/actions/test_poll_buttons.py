"""Buttons: votes are acked first and update the message; closing is the creator's; Home's create."""

from __future__ import annotations

import inspect
import re

from bolt_app.features.polls import blocks
from bolt_app.features.polls.domain import Draft
from tests.listeners import payloads
from tests.listeners.conftest import TEAM, WS, acked_first


def make_poll(features) -> str:
    poll = features.polls.service.create(WS, creator_id="U1", channel_id="C1", draft=Draft("Q?", ("a", "b")))
    features.polls.service.attach_message(WS, poll.poll_id, "C1", "1.1")
    return poll.poll_id


def press(app, body, ack, client, context) -> None:
    action = body["actions"][0]
    key = next(k for k in app.handlers if k[0] == "action" and re.fullmatch(k[1], action["action_id"]))
    handler = app.handlers[key]
    kwargs = {"ack": ack, "body": body, "action": action, "client": client, "context": context}
    params = inspect.signature(handler).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    handler(**{k: v for k, v in kwargs.items() if takes_all or k in params})


def test_vote_acks_first_then_updates_the_message(app, ack, client, context, timeline, features) -> None:
    poll_id = make_poll(features)
    press(app, payloads.vote(TEAM, "U2", poll_id, 1, "C1", "1.1"), ack, client, context)
    assert acked_first(timeline)
    (update,) = client.of("chat_update")
    assert update["channel"] == "C1" and update["ts"] == "1.1" and "<@U2>" in payloads.all_text(update["blocks"])


def test_bad_values_and_unknown_polls(app, ack, client, context) -> None:
    bad = payloads.vote(TEAM, "U2", "nope", 0, "C1", "1.1")
    bad["actions"][0]["value"] = "garbage"
    press(app, bad, ack, client, context)
    assert ack.calls == [{}] and client.of("chat_update") == [] and client.of("chat_postEphemeral") == []
    press(app, payloads.vote(TEAM, "U2", "0123456789abcdef", 0, "C1", "1.1"), ack, client, context)
    assert client.of("chat_postEphemeral")[0]["text"] == blocks.POLL_NOT_FOUND


def test_only_the_creator_closes(app, ack, client, context, features) -> None:
    poll_id = make_poll(features)
    press(app, payloads.close(TEAM, "U2", poll_id, "C1", "1.1"), ack, client, context)
    assert client.of("chat_postEphemeral") == [{"channel": "C1", "user": "U2", "text": blocks.NOT_CREATOR}]
    press(app, payloads.close(TEAM, "U1", poll_id, "C1", "1.1"), ack, client, context)
    assert "Closed" in payloads.all_text(client.of("chat_update")[-1]["blocks"])


def test_home_create_button_opens_the_modal(app, ack, client, context, timeline) -> None:
    body = {**payloads.home_create(TEAM, "U1", {"id": "VH", "type": "home"}), "trigger_id": "t9"}
    press(app, body, ack, client, context)
    assert acked_first(timeline) and client.of("views_open")[0]["view"]["callback_id"] == blocks.MODAL_CALLBACK_ID


def test_every_rendered_action_and_view_has_a_listener(app, features) -> None:
    from tests.features.polls.test_blocks import results

    rendered = [blocks.poll_message(results()), blocks.home_view("U1", [results()], [])]
    action_ids = {
        element["action_id"]
        for view in rendered
        for block in view["blocks"]
        for element in ([block["accessory"]] if "accessory" in block else []) + block.get("elements", [])
        if "action_id" in element
    }
    patterns = [k[1] for k in app.handlers if k[0] == "action"]
    assert action_ids and all(any(re.fullmatch(p, a) for p in patterns) for a in action_ids)
    assert ("view_submission", blocks.poll_modal()["callback_id"]) in app.handlers
