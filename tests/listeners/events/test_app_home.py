"""`app_home_opened`: the Home tab is published for the user; other tabs are left alone."""

from __future__ import annotations

from bolt_app.features.polls.domain import Draft
from tests.listeners import payloads
from tests.listeners.conftest import WS


def test_home_tab_is_published_with_the_users_polls(app, ack, client, context, features) -> None:
    poll = features.polls.service.create(WS, creator_id="U1", channel_id="C1", draft=Draft("Mine?", ("a", "b")))
    features.polls.service.attach_message(WS, poll.poll_id, "C1", "1.1")
    handler = app.handlers[("event", "app_home_opened")]
    handler(ack=ack, event=payloads.app_home_opened("U1", tab="messages"), client=client, context=context)
    assert client.of("views_publish") == []
    handler(ack=ack, event=payloads.app_home_opened("U1"), client=client, context=context)
    (published,) = client.of("views_publish")
    assert published["user_id"] == "U1" and published["view"]["type"] == "home"
    assert "Mine?" in payloads.all_text(published["view"]["blocks"])
