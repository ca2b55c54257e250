"""What a signed request must look like before Bolt routes it, and how to tell a malformed
payload from a bug.

`PayloadCheck` runs as Bolt's `before_authorize` middleware, so the same checks apply to HTTP
and Socket Mode: a signed body unlike any Slack payload is refused (400; in Socket Mode it is
left unacknowledged) before its ids reach authorize's queries or a listener. It also notes in the
context which side installed the app when a view payload says so (`installing_side`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional
from urllib.parse import urlparse

from slack_bolt import BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware

from bolt_app.settings import DEFAULT_API_URL

logger = logging.getLogger(__name__)

# Exceptions that, raised by Bolt's own code while routing a payload, mean the payload is malformed.
MALFORMED_PAYLOAD_ERRORS = (AttributeError, TypeError, KeyError, IndexError, ValueError, RecursionError)


def describe_location(error: BaseException) -> str:
    """`TypeError at slack_bolt/request/payload_utils.py:27`: enough to act on, no payload values."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{'/'.join(tb.tb_frame.f_code.co_filename.split('/')[-3:])}:{tb.tb_lineno}" if tb is not None else "?"
    return f"{type(error).__name__} at {where}"


def raised_by_bolt_on_payload(error: BaseException) -> bool:
    """A shape error raised inside Bolt's own routing code (not in a listener): the payload is malformed."""
    if not isinstance(error, MALFORMED_PAYLOAD_ERRORS):
        return False
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and "/slack_bolt/" in tb.tb_frame.f_code.co_filename


# Slack ids (T…, E…, U…, W…, B…, C…, D…, G…): short, plain. Anything else never reaches a query.
_SLACK_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_OBJECT_FIELDS = ("event", "view", "container", "message", "state")
_OBJECT_OR_ID_FIELDS = ("channel", "team", "enterprise", "user")
_LIST_OF_OBJECT_FIELDS = ("authorizations", "actions")
_CALLBACK_ID_TYPES = ("shortcut", "message_action", "interactive_message", "dialog_submission", "dialog_cancellation",
                      "workflow_step_edit")
# Interactions always name the user who acted (`user.id`); listeners rely on it.
_INTERACTIVE_TYPES = ("block_actions", "block_suggestion", "view_submission", "view_closed", "shortcut",
                      "message_action", "interactive_message", "dialog_submission")
_CONTEXT_IDS = ("enterprise_id", "team_id", "user_id", "channel_id", "actor_enterprise_id", "actor_team_id",
                "actor_user_id")
# Context key: the `InstallingSide` of a view payload, when that is not the acting person's own
# workspace (see `installing_side`).
INSTALLING_SIDE = "installing_side"


class InstallingSide(NamedTuple):
    """The installation a view belongs to, as Slack names it: an org-wide install by its
    `enterprise_id`, a workspace install by its `team_id`; `bot_id` is the view's `bot_id`, the
    bot of that installation."""

    enterprise_id: Optional[str]
    team_id: Optional[str]
    bot_id: Optional[str]


def installing_side(body: dict) -> InstallingSide | None:
    """The installation a view payload (view_submission, view_closed, block actions and suggestions
    in a modal) belongs to, when the body's own ids do not name it.

    Slack puts the installing workspace in `view.app_installed_team_id` (an enterprise id when
    the app is installed org-wide). In a Slack Connect channel, a person from another
    organization can open and submit the app's modal: the body's `enterprise`, `team` and
    `user.team_id` are then that organization's. Bolt takes the team from
    `app_installed_team_id` but the enterprise from the body, a pair that names no installation
    (or, worse, someone else's). With a different team here, authorize looks the installation up
    by the installing side alone, and never pairs it with the visitor's enterprise.
    """
    view = body.get("view")
    installed = view.get("app_installed_team_id") if isinstance(view, dict) else None
    if not isinstance(installed, str) or not installed:
        return None
    bot_id = view.get("bot_id") if isinstance(view.get("bot_id"), str) else None
    if installed.startswith("E"):
        return InstallingSide(installed, None, bot_id)
    team = body.get("team")
    user = body.get("user")
    acting_team = team.get("id") if isinstance(team, dict) else (user.get("team_id") if isinstance(user, dict) else None)
    return None if acting_team == installed else InstallingSide(None, installed, bot_id)


@dataclass(frozen=True)
class SlackOrigins:
    """Where a payload's response_url may point: the Slack the app talks to (SLACK_API_URL).

    For https://slack.com/api/: https on the default port, at slack.com or any host under
    .slack.com (hooks.slack.com). Whatever the API URL, its own scheme, host and port exactly
    (a stand-in on http://127.0.0.1:PORT in tests: that origin and no other)."""

    scheme: str
    host: str
    port: int | None
    suffix: str | None  # subdomains allowed (https on the default port only)

    def allows(self, url: object) -> bool:
        if not isinstance(url, str):
            return False
        try:
            parsed = urlparse(url)
            host, port = (parsed.hostname or "").lower(), parsed.port
        except ValueError:  # a port that is not a number, a malformed IPv6 host
            return False
        if not host or parsed.username is not None or parsed.password is not None:
            return False
        port = port if port is not None else _DEFAULT_PORTS.get(parsed.scheme)
        if (parsed.scheme, host, port) == (self.scheme, self.host, self.port):
            return True
        return (self.suffix is not None and parsed.scheme == "https" and port == 443
                and (host == self.suffix[1:] or host.endswith(self.suffix)))


_DEFAULT_PORTS = {"https": 443, "http": 80}


def slack_hosts(api_url: str) -> SlackOrigins:
    """The origins a response_url may have for the Slack at `api_url` (see `SlackOrigins`)."""
    parsed = urlparse(api_url)
    host = (parsed.hostname or "").lower()
    port = parsed.port if parsed.port is not None else _DEFAULT_PORTS.get(parsed.scheme)
    domain = host[4:] if host.startswith("api.") else host
    suffix = "." + domain if parsed.scheme == "https" else None
    return SlackOrigins(parsed.scheme, host, port, suffix)


def payload_problem(request: BoltRequest, response_hosts: SlackOrigins | None = None) -> str | None:
    """What makes a signed body unlike any Slack payload (None when it is plausible).

    Only the structure Bolt's routing and the listeners rely on is checked: the fields Slack
    always sends as objects are objects, the type fields are strings, every id Bolt resolved for
    the request (and that queries filter on) is a short plain Slack id, and a response_url (which
    Bolt and the listeners post to) points at Slack.
    """
    body = request.body
    kind = body.get("type")
    if kind is not None and not isinstance(kind, str):
        return "type is not a string"
    for name in _OBJECT_FIELDS:
        if name in body and not isinstance(body[name], dict):
            return f"{name} is not an object"
    for name in _OBJECT_OR_ID_FIELDS:
        value = body.get(name)
        if value is not None and not isinstance(value, (dict, str)):
            return f"{name} is neither an object nor an id"
    for name in _LIST_OF_OBJECT_FIELDS:
        value = body.get(name)
        if name in body and not (isinstance(value, list) and all(isinstance(item, dict) for item in value)):
            return f"{name} is not a list of objects"
    if "event" in body and not isinstance(body["event"].get("type"), str):
        return "event.type is not a string"
    if kind in ("view_submission", "view_closed") and not isinstance(body.get("view", {}).get("callback_id"), str):
        return "view.callback_id is not a string"
    if kind in _CALLBACK_ID_TYPES and not isinstance(body.get("callback_id"), str):
        return "callback_id is not a string"
    if kind == "block_suggestion" and not isinstance(body.get("action_id"), str):
        return "action_id is not a string"
    if kind == "block_actions" and not all(isinstance(a.get("action_id"), str) for a in body.get("actions") or []):
        return "actions[].action_id is not a string"
    if kind in _INTERACTIVE_TYPES and not (isinstance(body.get("user"), dict) and isinstance(body["user"].get("id"), str)):
        return "an interaction without the acting user"
    if "command" in body and not isinstance(body["command"], str):
        return "command is not a string"
    for name in _CONTEXT_IDS:
        value = request.context.get(name)
        if value is not None and not (isinstance(value, str) and _SLACK_ID.fullmatch(value)):
            return f"{name} is not a Slack id"
    entries = body.get("response_urls")
    if entries is not None and not (isinstance(entries, list)
                                    and all(isinstance(e, dict) and "response_url" in e for e in entries)):
        return "response_urls is not a list of objects with a response_url"
    origins = response_hosts or slack_hosts(DEFAULT_API_URL)
    # Every URL Bolt or a listener may post to: the context's (Bolt takes the first of
    # response_urls), the body's own, and each entry of response_urls (one per channel picked).
    urls = [request.context.get("response_url"), body.get("response_url")] + [e["response_url"] for e in entries or []]
    if any(url is not None and not origins.allows(url) for url in urls):
        return "response_url is not a Slack URL"
    for name in ("app_installed_team_id", "bot_id"):
        value = body.get("view", {}).get(name)
        if value is not None and not (isinstance(value, str) and _SLACK_ID.fullmatch(value)):
            return f"view.{name} is not a Slack id"
    return None


class PayloadCheck(Middleware):
    """Refuses (400) a signed request whose body is not shaped like a Slack payload."""

    def __init__(self, api_url: str):
        self.response_hosts = slack_hosts(api_url)

    def process(self, *, req: BoltRequest, resp: BoltResponse,
                next: Callable[[], BoltResponse]) -> Optional[BoltResponse]:  # noqa: A002 - Bolt's name
        problem = payload_problem(req, self.response_hosts) if isinstance(req.body, dict) and req.body else "no payload"
        if problem is None:
            side = installing_side(req.body)
            if side is not None:
                req.context[INSTALLING_SIDE] = side
            return next()
        logger.info("Malformed Slack payload refused: %s", problem)
        return BoltResponse(status=400, body="Malformed request body")
