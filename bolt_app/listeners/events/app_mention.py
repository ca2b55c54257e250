"""`app_mention`: answer in the thread with the token Bolt resolved for this workspace."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

HELP_TEXT = "Hi <@{user}>! I'm here. Mention me any time, and I'll answer in the thread."


def handle_app_mention(event: dict[str, Any], client: WebClient) -> None:
    # `client` carries this workspace's token (resolved by authorize), never a global one.
    client.chat_postMessage(
        channel=event["channel"],
        thread_ts=event.get("thread_ts") or event.get("ts"),
        text=HELP_TEXT.format(user=event.get("user", "there")),
    )


def register(app: App) -> None:
    app.event("app_mention")(handle_app_mention)
