"""`/poll`: no text opens the modal, `help` shows usage, quoted text posts a poll at once."""

from __future__ import annotations

from typing import Any, Callable

from slack_bolt import App, BoltContext

from bolt_app.features.polls import PollsFeature, blocks
from bolt_app.features.polls.domain import CommandKind, parse_command
from bolt_app.features.workspace import WorkspaceRef

COMMAND = "/poll"


def handle_poll_command(
    polls: PollsFeature, ack: Callable[..., Any], command: dict[str, Any], client: Any, context: BoltContext
) -> None:
    parsed = parse_command(command.get("text") or "")
    # Parsing is pure and instant: usage problems go back in the acknowledgement (ephemeral).
    if parsed.kind is CommandKind.HELP:
        ack(text=blocks.help_text(), response_type="ephemeral")
        return
    if parsed.kind is CommandKind.INVALID:
        ack(text=blocks.usage_text(parsed.problem), response_type="ephemeral")
        return
    ack()
    if parsed.kind is CommandKind.OPEN_MODAL:
        polls.open_modal(client, command["trigger_id"], channel_id=command.get("channel_id"))
        return
    assert parsed.draft is not None
    polls.post_new_poll(
        client,
        WorkspaceRef.from_context(context),
        creator_id=command["user_id"],
        channel_id=command["channel_id"],
        draft=parsed.draft,
        # trigger_id is unique per invocation: a duplicate delivery posts no second poll
        delivery_key=f"command:{command.get('trigger_id')}" if command.get("trigger_id") else None,
        response_url=command.get("response_url"),
    )


def register(app: App) -> None:
    app.command(COMMAND)(handle_poll_command)
