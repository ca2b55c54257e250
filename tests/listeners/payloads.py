"""Slack payloads for the poll listeners, shaped like Slack's (the stand-in fills in team, user
name, token, trigger_id and response_url when sent with `send_interactive`)."""

from __future__ import annotations

import json
import time
from typing import Any, Optional

from bolt_app.features.polls import blocks

_counter = [0]


def action_ts() -> str:
    _counter[0] += 1
    return f"{time.time():.6f}{_counter[0]:03d}"


def user(user_id: str, team_id: str) -> dict[str, Any]:
    return {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": team_id}


def block_actions(
    team_id: str,
    user_id: str,
    action: dict[str, Any],
    *,
    channel_id: Optional[str] = None,
    message_ts: Optional[str] = None,
    view: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {"type": "block_actions", "user": user(user_id, team_id), "actions": [action]}
    if channel_id is not None:
        payload["channel"] = {"id": channel_id, "name": "general"}
        payload["container"] = {"type": "message", "message_ts": message_ts, "channel_id": channel_id}
        payload["message"] = {"type": "message", "ts": message_ts, "text": "poll"}
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view.get("id")}
        payload["view"] = view
    return payload


def vote(team_id: str, user_id: str, poll_id: str, position: int, channel_id: str, message_ts: str,
         ts: Optional[str] = None) -> dict[str, Any]:
    action = {
        "type": "button",
        "block_id": f"option_{position}",
        "action_id": f"{blocks.VOTE_ACTION_PREFIX}{position}",
        "value": f"{poll_id}:{position}",
        "action_ts": ts or action_ts(),
    }
    return block_actions(team_id, user_id, action, channel_id=channel_id, message_ts=message_ts)


def close(team_id: str, user_id: str, poll_id: str, channel_id: str, message_ts: str) -> dict[str, Any]:
    action = {"type": "button", "block_id": "poll_controls", "action_id": blocks.CLOSE_ACTION_ID,
              "value": poll_id, "action_ts": action_ts()}
    return block_actions(team_id, user_id, action, channel_id=channel_id, message_ts=message_ts)


def home_create(team_id: str, user_id: str, home_view: dict[str, Any]) -> dict[str, Any]:
    action = {"type": "button", "block_id": "home_controls", "action_id": blocks.HOME_CREATE_ACTION_ID,
              "action_ts": action_ts()}
    return block_actions(team_id, user_id, action, view=home_view)


def modal_values(question: str = "", options: str = "", *, anonymous: bool = False, multiple: bool = False,
                 channel_id: Optional[str] = None) -> dict[str, Any]:
    selected = [{"value": v} for v, on in (("anonymous", anonymous), ("multiple", multiple)) if on]
    return {
        blocks.B_QUESTION: {blocks.INPUT_ACTION: {"type": "plain_text_input", "value": question}},
        blocks.B_OPTIONS: {blocks.INPUT_ACTION: {"type": "plain_text_input", "value": options}},
        blocks.B_SETTINGS: {blocks.INPUT_ACTION: {"type": "checkboxes", "selected_options": selected}},
        blocks.B_CHANNEL: {blocks.INPUT_ACTION: {"type": "conversations_select", "selected_conversation": channel_id}},
    }


def view_submission(team_id: str, user_id: str, view: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    submitted = {k: v for k, v in view.items() if k not in ("user_id", "via")}
    submitted["state"] = {"values": values}
    return {"type": "view_submission", "user": user(user_id, team_id), "view": submitted}


def global_shortcut(team_id: str, user_id: str) -> dict[str, Any]:
    return {"type": "shortcut", "callback_id": blocks.GLOBAL_SHORTCUT_ID, "user": user(user_id, team_id),
            "action_ts": action_ts()}


def message_shortcut(team_id: str, user_id: str, channel_id: str, text: str, ts: str = "1700000000.000200") -> dict[str, Any]:
    return {
        "type": "message_action",
        "callback_id": blocks.MESSAGE_SHORTCUT_ID,
        "user": user(user_id, team_id),
        "channel": {"id": channel_id, "name": "general"},
        "message": {"type": "message", "user": user_id, "ts": ts, "text": text},
        "message_ts": ts,
        "action_ts": action_ts(),
    }


def app_home_opened(user_id: str, tab: str = "home") -> dict[str, Any]:
    return {"type": "app_home_opened", "user": user_id, "channel": "D0HOME", "tab": tab}


def message_blocks(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Blocks of a recorded chat.postMessage / chat.update (form bodies carry them as JSON text)."""
    value = params.get("blocks") or []
    return json.loads(value) if isinstance(value, str) else value


def vote_buttons(params: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        b["accessory"]
        for b in message_blocks(params)
        if b.get("accessory", {}).get("action_id", "").startswith(blocks.VOTE_ACTION_PREFIX)
    ]


def all_text(value: Any) -> str:
    """Every text in a message or view (blocks, nested), joined: for `in` assertions."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                found.append(node["text"])
            for item in node.values():
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, str) and node.startswith("["):
            try:
                walk(json.loads(node))
            except ValueError:
                pass

    walk(value)
    return "\n".join(found)
