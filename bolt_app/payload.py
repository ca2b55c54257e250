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
from typing import Callable, NamedTuple, Optional
from urllib.parse import urlparse

from slack_bolt import BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware

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


def slack_hosts(api_url: str) -> tuple[str, str]:
    """(host, subdomain suffix) of the Slack the app talks to: for https://slack.com/api/ that is
    slack.com and anything under .slack.com (hooks.slack.com); a local stand-in's host as is."""
    host = (urlparse(api_url).hostname or "").lower()
    domain = host[4:] if host.startswith("api.") else host
    return host, "." + domain


def payload_problem(request: BoltRequest, response_hosts: tuple[str, str] | None = None) -> str | None:
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
    response_url = request.context.get("response_url")
    if response_url is not None and not _is_slack_url(response_url, response_hosts):
        return "response_url is not a Slack URL"
    for name in ("app_installed_team_id", "bot_id"):
        value = body.get("view", {}).get(name)
        if value is not None and not (isinstance(value, str) and _SLACK_ID.fullmatch(value)):
            return f"view.{name} is not a Slack id"
    return None


def _is_slack_url(value: object, hosts: tuple[str, str] | None) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = urlparse(value)
        host = (parsed.hostname or "").lower()
    except ValueError:
        return False
    if parsed.scheme not in ("https", "http") or not host:
        return False
    if hosts is None:
        return True
    exact, suffix = hosts
    return host == exact or host.endswith(suffix)


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
