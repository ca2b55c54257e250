"""Answers for signed, well-formed requests that no listener takes, or that come from a workspace
where the app is not installed.

Slack counts every non-2xx answer and every timeout as a failed delivery, turns off the event
subscriptions of an app whose deliveries keep failing, and shows "the app did not respond" to a
person who clicked. Real apps receive requests nothing here handles: message events once a
subscription is added, clicks on link buttons or on buttons of old messages, `view_closed`, a
callback id or slash command that is no longer handled, `block_suggestion`. Bolt answers those
404 by default; `App(raise_error_for_unhandled_request=True)` hands them to the error handler
instead, which answers here: 200, with the body Slack expects for the kind of request.

A request from a workspace with no installation (uninstalled while a message with buttons was
still on screen, say) is answered 200 too: a slash command gets the notice in the answer, a click
gets it posted to its response_url after the answer, with a short timeout and no retries, so
whatever that URL does never delays or fails the answer.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, Mapping, Optional

from slack_bolt import BoltResponse
from slack_sdk.webhook import WebhookClient

logger = logging.getLogger(__name__)
# slack_sdk logs a failed webhook post at ERROR; for a notice, the INFO line below says it instead.
_notice_client_logger = logging.getLogger(f"{__name__}.notice_client")
_notice_client_logger.setLevel(logging.CRITICAL)

COMMAND_GONE = "This command is no longer available."
NOT_INSTALLED = (
    ":warning: This app is not installed in this workspace any more, so it cannot do that. "
    "A workspace admin can install it again."
)
# A bound on the kinds (and workspaces) remembered as logged; past it, lines go to DEBUG only.
MAX_LOGGED_KINDS = 256
# Notices posted to response_urls after the answer: how long one may take, and how many may wait.
NOTICE_TIMEOUT_SECONDS = 3
MAX_PENDING_NOTICES = 100
# Interactions whose answer body Slack does not show: the notice goes to their response_url.
_NOTICE_BY_RESPONSE_URL = ("block_actions", "message_action", "interactive_message")


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


class LogOnce:
    """An INFO line the first time a key is seen in this process (up to a bound), DEBUG after."""

    def __init__(self, message: str, max_keys: int = MAX_LOGGED_KINDS):
        self.message = message
        self.max_keys = max_keys
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, key: str) -> None:
        with self._lock:
            first = key not in self._seen and len(self._seen) < self.max_keys
            if first:
                self._seen.add(key)
        logger.log(logging.INFO if first else logging.DEBUG, self.message, key)


class UnhandledRequests:
    """Answers requests no listener matched, and logs each kind of them once per process."""

    def __init__(self) -> None:
        self.note = LogOnce("No listener handles %s: answered 200 (logged once per kind)")

    def answer(self, body: Any) -> BoltResponse:
        self.note(kind_of(body))
        return quiet_answer(body, COMMAND_GONE)


class NotInstalledAnswers:
    """Answers requests from a workspace with no installation: 200 and a notice where Slack shows one."""

    def __init__(self, executor: Optional[Executor] = None, *, timeout: int = NOTICE_TIMEOUT_SECONDS,
                 max_pending: int = MAX_PENDING_NOTICES):
        self.executor = executor or ThreadPoolExecutor(max_workers=2, thread_name_prefix="not-installed-notice")
        self.timeout = timeout
        self.max_pending = max_pending
        self._pending = 0
        self._lock = threading.Lock()
        self.note = LogOnce("Request from %s, where the app is not installed: answered 200")

    def answer(self, body: Any, workspace: Optional[str]) -> BoltResponse:
        self.note(workspace or "an unknown workspace")
        if isinstance(body, Mapping) and body.get("type") in _NOTICE_BY_RESPONSE_URL:
            url = body.get("response_url")
            if isinstance(url, str) and url:
                self._post_later(url)  # the payload checks let only a Slack URL this far
        return quiet_answer(body, NOT_INSTALLED)

    def _post_later(self, url: str) -> None:
        with self._lock:
            if self._pending >= self.max_pending:
                logger.info("Not-installed notice skipped: %d already waiting", self._pending)
                return
            self._pending += 1
        try:
            self.executor.submit(self._post, url)
        except RuntimeError:  # the executor is shut down (the process is stopping)
            self._done()

    def _post(self, url: str) -> None:
        try:
            # No retry handlers: one attempt, bounded by the timeout, and nobody waits for it.
            client = WebhookClient(url, timeout=self.timeout, retry_handlers=[], logger=_notice_client_logger)
            response = client.send_dict({"response_type": "ephemeral", "replace_original": False,
                                         "text": NOT_INSTALLED})
            if response.status_code != 200:
                logger.info("Not-installed notice: the response_url answered %s", response.status_code)
        except Exception as error:  # noqa: BLE001 - a notice that fails is only logged
            logger.info("Not-installed notice not delivered: %s", type(error).__name__)
        finally:
            self._done()

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1
