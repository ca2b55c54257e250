"""Poll buttons: vote (toggle), close (creator only), and App Home's "Create poll"."""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

from slack_bolt import App, BoltContext

from bolt_app.features.idempotency import action_key
from bolt_app.features.polls import PollsFeature, blocks
from bolt_app.features.workspace import WorkspaceRef
from bolt_app.listeners.common import acknowledge


def channel_of(body: dict[str, Any]) -> Optional[str]:
    channel = body.get("channel") or {}
    return channel.get("id") or (body.get("container") or {}).get("channel_id")


def handle_vote(
    polls: PollsFeature, body: dict[str, Any], action: dict[str, Any], client: Any, context: BoltContext
) -> None:
    """After the answer: record the click, then refresh the message (or tell the voter why not)."""
    poll_id, _, position = str(action.get("value") or "").partition(":")
    if not poll_id or not position.isdigit():
        return
    polls.vote(
        client,
        WorkspaceRef.from_context(context),
        poll_id=poll_id,
        position=int(position),
        user_id=body["user"]["id"],
        channel_id=channel_of(body),
        delivery_key=action_key(body, action),
    )


def handle_close(
    polls: PollsFeature, body: dict[str, Any], action: dict[str, Any], client: Any, context: BoltContext
) -> None:
    poll_id = str(action.get("value") or "")
    if poll_id:
        polls.close(
            client, WorkspaceRef.from_context(context), poll_id=poll_id, user_id=body["user"]["id"],
            channel_id=channel_of(body),
        )


def handle_home_create(polls: PollsFeature, ack: Callable[..., Any], body: dict[str, Any], client: Any) -> None:
    ack()
    polls.open_modal(client, body["trigger_id"])


def register(app: App) -> None:
    # Answered at once; the vote's transaction and the message update run after the answer, so a
    # click never waits behind other clicks' database work. (A vote that cannot be stored is told
    # to the voter by an ephemeral message: Slack does not retry clicks.)
    app.action(re.compile(blocks.VOTE_ACTION_PATTERN))(ack=acknowledge, lazy=[handle_vote])
    app.action(blocks.CLOSE_ACTION_ID)(ack=acknowledge, lazy=[handle_close])
    app.action(blocks.HOME_CREATE_ACTION_ID)(handle_home_create)
