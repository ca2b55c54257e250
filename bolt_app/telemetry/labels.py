"""Label values, each from a bounded set: with 100 000 installations a label may name a kind of
thing (a Web API method, an event type, an error code) but never a workspace, user, channel,
message or token. A value outside its set is counted as "other".
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Optional
from urllib.parse import urlsplit

from bolt_app import manifest

OTHER = "other"

# Interactive payload types, by the kind of request they are (Slack's names).
_INTERACTIVE_KINDS = {
    "block_actions": "action",
    "interactive_message": "action",
    "view_submission": "view",
    "view_closed": "view",
    "shortcut": "shortcut",
    "message_action": "shortcut",
    "block_suggestion": "options",
    "dialog_suggestion": "options",
    "dialog_submission": "dialog",
    "dialog_cancellation": "dialog",
}
# Envelope types of the Events API other than event_callback.
_ENVELOPE_KINDS = {"url_verification": "url_verification", "app_rate_limited": "app_rate_limited"}

# Kinds of requests refused before they are parsed (the WSGI layer's own answers).
UNVERIFIED = "unverified"  # missing, invalid or stale signature
MALFORMED = "malformed"  # too large, undecodable, no Slack payload


@lru_cache(maxsize=1)
def manifest_events() -> frozenset[str]:
    """The event types the app subscribes to (manifest.yml): the only ones named in labels."""
    events = ((manifest.load_manifest().get("settings") or {}).get("event_subscriptions") or {})
    return frozenset(str(e) for key in ("bot_events", "user_events") for e in events.get(key) or [])


@lru_cache(maxsize=1)
def manifest_commands() -> frozenset[str]:
    return frozenset(command for command, _ in manifest.slash_commands())


def request_kind(body: Any) -> tuple[str, str]:
    """(kind, name) of a parsed Slack payload: ("event", event type), ("command", command),
    ("action" | "view" | "shortcut" | "options" | "dialog", Slack's payload type),
    (envelope type, ""); ("other", "") for anything else. Event types and commands outside the
    manifest are named "other"."""
    if not isinstance(body, dict):
        return OTHER, ""
    if "command" in body and isinstance(body.get("command"), str):
        command = body["command"]
        return "command", command if command in manifest_commands() else OTHER
    kind = body.get("type")
    if kind == "event_callback":
        event = body.get("event")
        event_type = event.get("type") if isinstance(event, dict) else None
        return "event", event_type if event_type in manifest_events() else OTHER
    if isinstance(kind, str) and kind in _INTERACTIVE_KINDS:
        return _INTERACTIVE_KINDS[kind], kind
    if isinstance(kind, str) and kind in _ENVELOPE_KINDS:
        return _ENVELOPE_KINDS[kind], ""
    return OTHER, ""


def describe_kind(kind: str, name: str) -> str:
    """For log lines: `event:app_mention`, `command:/poll`, `action:block_actions`, `unverified`."""
    return f"{kind}:{name}" if name else kind


# ----------------------------------------------------------------------------- Web API


@lru_cache(maxsize=1)
def known_methods() -> frozenset[str]:
    """Web API methods slack_sdk's WebClient has a method for (`chat_postMessage` is
    `chat.postMessage`, `oauth_v2_access` is `oauth.v2.access`)."""
    from slack_sdk import WebClient

    return frozenset(name.replace("_", ".") for name in dir(WebClient)
                     if not name.startswith("_") and callable(getattr(WebClient, name, None)))


WEBHOOK = "webhook"


def api_method(url: str) -> str:
    """The Web API method of a request URL (`…/api/chat.update?…` is `chat.update`), if known;
    "webhook" for a response_url or incoming webhook (anything not under /api/)."""
    path = urlsplit(url).path
    folder, _, method = path.rpartition("/")
    if not folder.endswith("/api"):
        return WEBHOOK
    return method if method in known_methods() else OTHER


# Error codes Slack's Web API answers with `ok: false`, common across methods (and every one the
# app reacts to). Slack documents more per method; those are counted as "other" until added here.
KNOWN_ERRORS = frozenset({
    # authentication and tokens
    "not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired", "no_permission",
    "missing_scope", "not_allowed_token_type", "org_login_required", "ekm_access_denied", "team_access_not_granted",
    "two_factor_setup_required", "enterprise_is_restricted", "app_uninstalled",
    # OAuth and token rotation
    "invalid_client_id", "bad_client_secret", "invalid_code", "code_already_used", "invalid_grant_type",
    "invalid_refresh_token", "invalid_grant", "bad_redirect_uri", "oauth_authorization_url_mismatch",
    # throttling and Slack's own trouble
    "ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
    "team_added_to_org", "accesslimited",
    # request shape
    "invalid_arguments", "invalid_arg_name", "invalid_array_arg", "invalid_charset", "invalid_form_data",
    "invalid_post_type", "missing_post_type", "invalid_json", "json_not_object", "unknown_method", "method_deprecated",
    "deprecated_endpoint", "too_many_attachments", "too_many_blocks", "invalid_blocks", "invalid_blocks_format",
    "invalid_attachments", "invalid_metadata_format", "invalid_metadata_schema", "msg_too_long", "no_text",
    "invalid_cursor", "limit_required", "upgrade_required",
    # channels, messages, users
    "channel_not_found", "not_in_channel", "is_archived", "is_inactive", "restricted_action",
    "restricted_action_read_only_channel", "restricted_action_thread_only_channel", "restricted_action_non_threadable_channel",
    "message_not_found", "cant_update_message", "cant_delete_message", "edit_window_closed", "thread_not_found",
    "user_not_found", "user_not_in_channel", "users_not_found", "cannot_dm_bot", "messages_tab_disabled",
    "already_reacted", "too_many_reactions", "invalid_name", "duplicate_channel_not_found", "duplicate_message_not_found",
    "channel_type_not_supported", "team_not_found", "bot_not_found",
    # views and modals
    "expired_trigger_id", "invalid_trigger_id", "exchanged_trigger_id", "view_too_large", "not_found",
    "hash_conflict", "push_limit_reached", "duplicate_external_id",
})
_HTTP_STATUSES = frozenset({400, 401, 403, 404, 405, 408, 410, 413, 429, 500, 502, 503, 504})


def api_error(code: Any) -> str:
    return code if isinstance(code, str) and code in KNOWN_ERRORS else OTHER


def http_outcome(status: int) -> str:
    return f"http_{status}" if status in _HTTP_STATUSES else ("http_5xx" if status >= 500 else "http_other")


# ----------------------------------------------------------------------------- other sets

_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def function_name(name: Optional[str]) -> str:
    """A lazy function's name for a label: a Python identifier (a listener function's name, which
    the code bounds), else "other"."""
    return name if isinstance(name, str) and _FUNCTION_NAME.fullmatch(name) else OTHER
