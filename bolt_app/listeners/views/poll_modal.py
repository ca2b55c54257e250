"""The "Create a poll" modal's submission: inline errors, or close the modal and post the poll."""

from __future__ import annotations

from typing import Any, Callable, Optional

from slack_bolt import App, BoltContext

from bolt_app.features.polls import PollsFeature, blocks
from bolt_app.features.workspace import WorkspaceRef


def response_url_for(body: dict[str, Any], channel_id: str) -> Optional[str]:
    """The response_url Slack made for the chosen channel (`response_url_enabled` select)."""
    for entry in body.get("response_urls") or []:
        if entry.get("block_id") == blocks.B_CHANNEL or entry.get("channel_id") == channel_id:
            return entry.get("response_url")
    return None


def handle_submission(
    polls: PollsFeature, ack: Callable[..., Any], body: dict[str, Any], view: dict[str, Any], client: Any,
    context: BoltContext,
) -> None:
    entered = blocks.read_modal((view.get("state") or {}).get("values") or {})
    errors = entered.errors()
    if errors:
        ack(response_action="errors", errors=errors)
        return
    ack()  # closes the modal
    assert entered.channel_id is not None
    polls.post_new_poll(
        client,
        WorkspaceRef.from_context(context),
        creator_id=body["user"]["id"],
        channel_id=entered.channel_id,
        draft=entered.draft(),
        # one poll per modal, however often the submission is delivered
        delivery_key=f"view:{view.get('id')}" if view.get("id") else None,
        response_url=response_url_for(body, entered.channel_id),
    )


def register(app: App) -> None:
    app.view_submission(blocks.MODAL_CALLBACK_ID)(handle_submission)
