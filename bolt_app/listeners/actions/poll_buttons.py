"""Poll buttons: vote (toggle), close (creator only), and App Home's "Create poll"."""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

from slack_bolt import App, BoltContext

from bolt_app.features.idempotency import action_key
from bolt_app.features.polls import PollsFeature, blocks
from bolt_app.features.workspace import WorkspaceRef


def channel_of(body: dict[str, Any]) -> Optional[str]:
    channel = body.get("channel") or {}
    return channel.get("id") or (body.get("container") or {}).get("channel_id")


def handle_vote(
    polls: PollsFeature, ack: Callable[..., Any], body: dict[str, Any], action: dict[str, Any], client: Any,
    context: BoltContext,
) -> None:
    ack()
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
    polls: PollsFeature, ack: Callable[..., Any], body: dict[str, Any], action: dict[str, Any], client: Any,
    context: BoltContext,
) -> None:
    ack()
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
    polls: PollsFeature = app.features.polls  # type: ignore[attr-defined]

    def poll_vote(ack: Callable[..., Any], body: dict, action: dict, client: Any, context: BoltContext) -> None:
        handle_vote(polls, ack, body, action, client, context)

    def poll_close(ack: Callable[..., Any], body: dict, action: dict, client: Any, context: BoltContext) -> None:
        handle_close(polls, ack, body, action, client, context)

    def poll_home_create(ack: Callable[..., Any], body: dict, client: Any) -> None:
        handle_home_create(polls, ack, body, client)

    app.action(re.compile(blocks.VOTE_ACTION_PATTERN))(poll_vote)
    app.action(blocks.CLOSE_ACTION_ID)(poll_close)
    app.action(blocks.HOME_CREATE_ACTION_ID)(poll_home_create)
