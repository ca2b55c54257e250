"""Shortcuts open the poll modal; the message shortcut prefills the question and channel."""

from __future__ import annotations

from bolt_app.features.polls import blocks
from tests.listeners import payloads
from tests.listeners.conftest import TEAM, acked_first


def test_global_shortcut_opens_the_modal(app, ack, client, timeline) -> None:
    shortcut = {**payloads.global_shortcut(TEAM, "U1"), "trigger_id": "t1"}
    app.handlers[("global_shortcut", blocks.GLOBAL_SHORTCUT_ID)](ack=ack, shortcut=shortcut, client=client)
    assert acked_first(timeline)
    (opened,) = client.of("views_open")
    assert opened["trigger_id"] == "t1"
    assert opened["view"]["blocks"][-1]["element"]["default_to_current_conversation"] is True


def test_message_shortcut_uses_the_message_text(app, ack, client, timeline) -> None:
    shortcut = {**payloads.message_shortcut(TEAM, "U1", "C5", "Where &amp; when?"), "trigger_id": "t2"}
    app.handlers[("message_shortcut", blocks.MESSAGE_SHORTCUT_ID)](ack=ack, shortcut=shortcut, client=client)
    assert acked_first(timeline)
    view = client.of("views_open")[0]["view"]
    assert view["blocks"][0]["element"]["initial_value"] == "Where & when?"
    assert view["blocks"][-1]["element"]["initial_conversation"] == "C5"
