"""Answers for signed, well-formed requests that no listener takes.

Slack counts every non-2xx answer and every timeout as a failed delivery, turns off the event
subscriptions of an app whose deliveries keep failing, and shows "the app did not respond" to a
person who clicked. Real apps receive requests nothing here handles: message events once a
subscription is added, clicks on link buttons or on buttons of old messages, `view_closed`, a
callback id or slash command that is no longer handled, `block_suggestion`. Bolt answers those
404 by default; `App(raise_error_for_unhandled_request=True)` hands them to the error handler
instead, which answers here: 200, with the body Slack expects for the kind of request.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Mapping

from slack_bolt import BoltResponse

logger = logging.getLogger(__name__)

COMMAND_GONE = "This command is no longer available."
# A bound on the kinds remembered as logged; every kind past it is logged at DEBUG only.
MAX_LOGGED_KINDS = 256


def kind_of(body: Any) -> str:
    """A short name for what a payload is (never a value a person typed): `event message/bot_message`,
    `command /old`, `view_submission old_modal`, `block_actions`."""
    if not isinstance(body, Mapping):
        return "unknown"
    kind = body.get("type")
    if kind == "event_callback":
        event = body.get("event") if isinstance(body.get("event"), Mapping) else {}
        name = f"event {_id(event.get('type'))}"
        return f"{name}/{_id(event.get('subtype'))}" if event.get("subtype") else name
    if kind is None and "command" in body:
        return f"command {_id(body.get('command'))}"
    if kind in ("view_submission", "view_closed"):
        view = body.get("view") if isinstance(body.get("view"), Mapping) else {}
        return f"{kind} {_id(view.get('callback_id'))}"
    if kind in ("shortcut", "message_action"):
        return f"{kind} {_id(body.get('callback_id'))}"
    return _id(kind)


def _id(value: Any) -> str:
    text = value if isinstance(value, str) else type(value).__name__
    return text[:64]


def json_answer(payload: Mapping[str, Any]) -> BoltResponse:
    return BoltResponse(status=200, body=dict(payload))  # Bolt encodes it and sets the JSON type


def quiet_answer(body: Any, command_text: str) -> BoltResponse:
    """200 with what Slack expects when the app has nothing to do: an empty options list for
    `block_suggestion`, `command_text` as an ephemeral reply to a slash command, else nothing."""
    if isinstance(body, Mapping):
        if body.get("type") in ("block_suggestion", "dialog_suggestion"):
            return json_answer({"options": []})
        if body.get("type") is None and "command" in body:
            return json_answer({"response_type": "ephemeral", "text": command_text})
    return BoltResponse(status=200, body="")


class UnhandledRequests:
    """Answers requests no listener matched, and logs each kind of them once per process."""

    def __init__(self, max_kinds: int = MAX_LOGGED_KINDS):
        self.max_kinds = max_kinds
        self._logged: set[str] = set()
        self._lock = threading.Lock()

    def answer(self, body: Any) -> BoltResponse:
        self.note(kind_of(body))
        return quiet_answer(body, COMMAND_GONE)

    def note(self, kind: str) -> None:
        with self._lock:
            first = kind not in self._logged and len(self._logged) < self.max_kinds
            if first:
                self._logged.add(kind)
        if first:
            logger.info("No listener handles %s: answered 200 (logged once per kind)", kind)
        else:
            logger.debug("No listener handles %s: answered 200", kind)
