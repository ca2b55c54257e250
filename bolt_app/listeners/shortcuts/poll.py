"""Shortcuts: "Create a poll" (global) and "Make a poll from this message" (message)."""

from __future__ import annotations

from typing import Any, Callable

from slack_bolt import App

from bolt_app.features.polls import PollsFeature, blocks


def handle_global_shortcut(polls: PollsFeature, ack: Callable[..., Any], shortcut: dict[str, Any], client: Any) -> None:
    ack()
    polls.open_modal(client, shortcut["trigger_id"])


def handle_message_shortcut(polls: PollsFeature, ack: Callable[..., Any], shortcut: dict[str, Any], client: Any) -> None:
    ack()
    message = shortcut.get("message") or {}
    polls.open_modal(
        client,
        shortcut["trigger_id"],
        question=message.get("text") or "",
        channel_id=(shortcut.get("channel") or {}).get("id"),
    )


def register(app: App) -> None:
    app.global_shortcut(blocks.GLOBAL_SHORTCUT_ID)(handle_global_shortcut)
    app.message_shortcut(blocks.MESSAGE_SHORTCUT_ID)(handle_message_shortcut)
