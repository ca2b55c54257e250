"""Request bodies laid out like the samples Slack publishes, written for this suite.

Each builder names the published sample whose field layout it follows: the payload examples in
Slack's API documentation (Events API envelope, message event and its subtypes, interactivity
payloads for block_actions / view_submission / view_closed / shortcuts / block_suggestion, slash
command form fields) and the request fixtures of the bolt-python and java-slack-sdk test suites
(Enterprise Grid `enterprise` objects, `is_enterprise_install`, `authorizations`, `team: null`
in org-wide installs, Slack Connect bodies where `user.team_id` is not the channel's team).
The values are ours: ids come from the stand-in's workspaces, response URLs from the stand-in
(the app refuses a `response_url` that does not point at the Slack it talks to).

Interactivity payloads are sent form-encoded as `payload=<json>`, events as JSON, slash commands
as form fields: `kind_of` a sample says which (see `send`).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from typing import Any, Optional

from bolt_app.features.polls import blocks

_serial = itertools.count(1)
API_APP_ID = "A0APP"  # the stand-in's app id
VERIFICATION_TOKEN = "standin-verification-token"


def _ts() -> str:
    return f"{time.time():.6f}"


def _n() -> int:
    return next(_serial)


@dataclass(frozen=True)
class Side:
    """One organization in a payload: a workspace, its Enterprise Grid org (or None), a person."""

    team_id: str
    user_id: str
    enterprise_id: Optional[str] = None
    domain: str = "acme"
    enterprise_name: str = "Acme Corp"

    def team_object(self) -> dict[str, Any]:
        # Interactivity payloads: {"id", "domain"} plus the org's id and name on Grid.
        team: dict[str, Any] = {"id": self.team_id, "domain": self.domain}
        if self.enterprise_id:
            team.update(enterprise_id=self.enterprise_id, enterprise_name=self.enterprise_name)
        return team

    def enterprise_object(self) -> Optional[dict[str, Any]]:
        return {"id": self.enterprise_id, "name": self.enterprise_name} if self.enterprise_id else None

    def user_object(self) -> dict[str, Any]:
        name = self.user_id.lower()
        return {"id": self.user_id, "username": name, "name": name, "team_id": self.team_id}


# --------------------------------------------------------------------------- Events API


def authorization(*, enterprise_id: Optional[str], team_id: Optional[str], bot_user_id: str,
                  org_wide: bool = False) -> dict[str, Any]:
    """One entry of the envelope's `authorizations` (an org-wide install has `team_id: null`)."""
    return {"enterprise_id": enterprise_id, "team_id": None if org_wide else team_id, "user_id": bot_user_id,
            "is_bot": True, "is_enterprise_install": org_wide}


def event_envelope(event: dict[str, Any], *, team_id: str, enterprise_id: Optional[str],
                   authorizations: list[dict[str, Any]], shared: bool = False,
                   context_team_id: Optional[str] = None, context_enterprise_id: Optional[str] = None
                   ) -> dict[str, Any]:
    """The Events API `event_callback` envelope (Slack's "Events API" documentation sample:
    token, team_id, api_app_id, event, type, event_id, event_time, authorizations,
    is_ext_shared_channel, event_context; enterprise_id and the context_* ids on Grid / Connect)."""
    n = _n()
    body: dict[str, Any] = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": API_APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": f"Ev0SAMPLE{n:05d}",
        "event_time": int(time.time()),
        "authorizations": authorizations,
        "is_ext_shared_channel": shared,
        "event_context": f"4-eyJldCI6Im1lc3NhZ2UiLCJ0aWQiOiJ{n:05d}",
    }
    if enterprise_id is not None:
        body["enterprise_id"] = enterprise_id
    if context_team_id is not None:
        body["context_team_id"] = context_team_id
        body["context_enterprise_id"] = context_enterprise_id
    return body


def message_event(*, user_id: str, team_id: str, channel_id: str, text: str = "Hello world") -> dict[str, Any]:
    """A person's message (the `message` event sample: type, channel, user, text, ts, team,
    client_msg_id, blocks, event_ts, channel_type)."""
    ts = _ts()
    return {
        "type": "message",
        "client_msg_id": f"5ea4c4a6-0f1b-4d5e-9c33-{_n():012d}",
        "text": text,
        "user": user_id,
        "ts": ts,
        "team": team_id,
        "blocks": [{"type": "rich_text", "block_id": "Bq1", "elements": [
            {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}]}],
        "channel": channel_id,
        "event_ts": ts,
        "channel_type": "channel",
    }


def bot_message_event(*, channel_id: str, bot_id: str = "B0OTHERBOT") -> dict[str, Any]:
    """The `bot_message` subtype sample: no user, a bot_id, a username and icons."""
    ts = _ts()
    return {"type": "message", "subtype": "bot_message", "text": "Build finished", "ts": ts, "username": "ci-bot",
            "icons": {"image_48": "https://example.com/ci.png"}, "bot_id": bot_id, "channel": channel_id,
            "event_ts": ts, "channel_type": "channel"}


def message_changed_event(*, user_id: str, channel_id: str) -> dict[str, Any]:
    """The `message_changed` subtype sample: hidden, the edited `message` and `previous_message`."""
    original, now = f"{time.time() - 60:.6f}", _ts()
    return {
        "type": "message",
        "subtype": "message_changed",
        "hidden": True,
        "message": {"type": "message", "user": user_id, "text": "see you at 3pm", "ts": original,
                    "edited": {"user": user_id, "ts": now}, "source_team": "T0", "user_team": "T0"},
        "previous_message": {"type": "message", "user": user_id, "text": "see you at 2pm", "ts": original},
        "channel": channel_id,
        "ts": now,
        "event_ts": now,
        "channel_type": "channel",
    }


def message_in_workspace(installed: Side, *, bot_user_id: str, channel_id: str, event: Optional[dict] = None
                         ) -> dict[str, Any]:
    """A message event in a workspace that installed the app itself."""
    event = event or message_event(user_id=installed.user_id, team_id=installed.team_id, channel_id=channel_id)
    return event_envelope(event, team_id=installed.team_id, enterprise_id=installed.enterprise_id,
                          authorizations=[authorization(enterprise_id=installed.enterprise_id,
                                                        team_id=installed.team_id, bot_user_id=bot_user_id)])


def slack_connect_message(installed: Side, visitor: Side, *, bot_user_id: str, channel_id: str) -> dict[str, Any]:
    """A visitor's message in a Slack Connect channel (bolt-python's Slack Connect event fixtures:
    team_id / enterprise_id are the visitor's org, `authorizations[0]` and the context_* ids the
    installing side's, `is_ext_shared_channel: true`, `event.team` the visitor's workspace)."""
    event = message_event(user_id=visitor.user_id, team_id=visitor.team_id, channel_id=channel_id,
                          text="Hi from the other side")
    return event_envelope(
        event, team_id=visitor.team_id, enterprise_id=visitor.enterprise_id, shared=True,
        authorizations=[authorization(enterprise_id=installed.enterprise_id, team_id=installed.team_id,
                                      bot_user_id=bot_user_id)],
        context_team_id=installed.team_id, context_enterprise_id=installed.enterprise_id)


def org_wide_message(member: Side, *, bot_user_id: str, channel_id: str) -> dict[str, Any]:
    """A message in one workspace of an org-wide (Enterprise Grid) install: the authorization has
    `team_id: null` and `is_enterprise_install: true`."""
    event = message_event(user_id=member.user_id, team_id=member.team_id, channel_id=channel_id)
    return event_envelope(event, team_id=member.team_id, enterprise_id=member.enterprise_id,
                          authorizations=[authorization(enterprise_id=member.enterprise_id, team_id=member.team_id,
                                                        bot_user_id=bot_user_id, org_wide=True)])


def mention_event(*, user_id: str, team_id: str, channel_id: str, bot_user_id: str) -> dict[str, Any]:
    ts = _ts()
    return {"type": "app_mention", "user": user_id, "text": f"<@{bot_user_id}> help", "ts": ts, "team": team_id,
            "channel": channel_id, "event_ts": ts}


# --------------------------------------------------------------------------- interactivity


def _interaction(kind: str, actor: Side, *, org_wide: bool = False) -> dict[str, Any]:
    """Fields every interactivity payload sample shares. In an org-wide install `team` is null
    and `user.team_id` names the person's workspace."""
    return {
        "type": kind,
        "user": actor.user_object(),
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": f"{_n()}.{_n()}.0a1b2c3d4e5f",
        "team": None if org_wide else actor.team_object(),
        "enterprise": actor.enterprise_object(),
        "is_enterprise_install": org_wide,
    }


def block_actions(actor: Side, action: dict[str, Any], *, channel_id: str, response_url: str,
                  org_wide: bool = False) -> dict[str, Any]:
    """A click on a message button (the block_actions sample: container, channel, message,
    state, response_url, actions[] with type, action_id, block_id, text, value, action_ts)."""
    message_ts = f"{time.time() - 300:.6f}"
    body = _interaction("block_actions", actor, org_wide=org_wide)
    body.update(
        container={"type": "message", "message_ts": message_ts, "channel_id": channel_id, "is_ephemeral": False},
        channel={"id": channel_id, "name": "general"},
        message={"type": "message", "subtype": "bot_message", "text": "Pick one", "ts": message_ts,
                 "bot_id": "B0SAMPLE", "blocks": []},
        state={"values": {}},
        response_url=response_url,
        actions=[action],
    )
    return body


def link_button_action() -> dict[str, Any]:
    """A button with a `url`: Slack opens the link and still sends block_actions."""
    return {"action_id": "Wa" + str(_n()), "block_id": "=qXel", "text": {"type": "plain_text", "text": "View",
            "emoji": True}, "value": "click_me_123", "url": "https://example.com/report", "type": "button",
            "action_ts": _ts()}


def old_button_action(action_id: str = "approve_request_v1") -> dict[str, Any]:
    """A button of an old message whose action_id the app no longer handles."""
    return {"action_id": action_id, "block_id": "actions1", "text": {"type": "plain_text", "text": "Approve"},
            "value": "req-42", "style": "primary", "type": "button", "action_ts": _ts()}


def view(callback_id: str, *, viewer_team_id: str, installed_team_id: str, values: Optional[dict] = None,
         blocks_: Optional[list] = None, bot_id: str = "B0SAMPLE") -> dict[str, Any]:
    """A modal as Slack sends it back (the view object sample: id, team_id, type, blocks,
    private_metadata, callback_id, state, hash, title, clear_on_close, notify_on_close, close,
    submit, previous_view_id, root_view_id, app_id, external_id, app_installed_team_id, bot_id)."""
    view_id = f"V0SAMPLE{_n():04d}"
    return {
        "id": view_id,
        "team_id": viewer_team_id,
        "type": "modal",
        "blocks": blocks_ or [],
        "private_metadata": "",
        "callback_id": callback_id,
        "state": {"values": values or {}},
        "hash": f"{int(time.time())}.aB3dE5fG",
        "title": {"type": "plain_text", "text": "Create a poll", "emoji": True},
        "clear_on_close": False,
        "notify_on_close": True,
        "close": {"type": "plain_text", "text": "Cancel", "emoji": True},
        "submit": {"type": "plain_text", "text": "Post poll", "emoji": True},
        "previous_view_id": None,
        "root_view_id": view_id,
        "app_id": API_APP_ID,
        "external_id": "",
        "app_installed_team_id": installed_team_id,
        "bot_id": bot_id,
    }


def view_submission(actor: Side, submitted: dict[str, Any], *, response_urls: Optional[list] = None
                    ) -> dict[str, Any]:
    """The view_submission sample: the view, `response_urls` (empty unless an input asked for one)."""
    body = _interaction("view_submission", actor)
    body.update(view=submitted, response_urls=response_urls or [])
    return body


def view_closed(actor: Side, closed: dict[str, Any]) -> dict[str, Any]:
    """The view_closed sample (sent for modals opened with notify_on_close): the view, is_cleared."""
    body = _interaction("view_closed", actor)
    body.update(view=closed, is_cleared=False)
    return body


def global_shortcut(actor: Side, callback_id: str) -> dict[str, Any]:
    """The global shortcut sample: callback_id, trigger_id, action_ts."""
    body = _interaction("shortcut", actor)
    body.update(callback_id=callback_id, action_ts=_ts())
    return body


def message_shortcut(actor: Side, callback_id: str, *, channel_id: str, response_url: str) -> dict[str, Any]:
    """The message shortcut (message_action) sample: the message, its channel, a response_url."""
    ts = f"{time.time() - 120:.6f}"
    body = _interaction("message_action", actor)
    body.update(callback_id=callback_id, action_ts=_ts(), message_ts=ts, response_url=response_url,
                channel={"id": channel_id, "name": "general"},
                message={"type": "message", "user": actor.user_id, "ts": ts, "text": "Lunch options?"})
    return body


def block_suggestion(actor: Side, *, installed_team_id: str, value: str = "piz") -> dict[str, Any]:
    """The block_suggestion sample (an external_select in a modal asking for options): container,
    action_id, block_id, value, the view."""
    modal = view("ticket_form", viewer_team_id=actor.team_id, installed_team_id=installed_team_id)
    body = _interaction("block_suggestion", actor)
    body.update(container={"type": "view", "view_id": modal["id"]}, action_id="pick_product",
                block_id="product_block", value=value, view=modal)
    body.pop("trigger_id")  # suggestions carry none
    return body


def slash_command(actor: Side, command: str, *, channel_id: str, response_url: str, text: str = "") -> dict[str, str]:
    """The slash command sample's form fields (enterprise_id / enterprise_name only on Grid)."""
    fields = {
        "token": VERIFICATION_TOKEN,
        "team_id": actor.team_id,
        "team_domain": actor.domain,
        "channel_id": channel_id,
        "channel_name": "general",
        "user_id": actor.user_id,
        "user_name": actor.user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": API_APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": f"{_n()}.{_n()}.0a1b2c3d4e5f",
    }
    if actor.enterprise_id:
        fields.update(enterprise_id=actor.enterprise_id, enterprise_name=actor.enterprise_name)
    return fields


def poll_modal_values(question: str, options: list[str], channel_id: str) -> dict[str, Any]:
    """`view.state.values` of the app's own "Create a poll" modal, as Slack submits it."""
    return {
        blocks.B_QUESTION: {blocks.INPUT_ACTION: {"type": "plain_text_input", "value": question}},
        blocks.B_OPTIONS: {blocks.INPUT_ACTION: {"type": "plain_text_input", "value": "\n".join(options)}},
        blocks.B_SETTINGS: {blocks.INPUT_ACTION: {"type": "checkboxes", "selected_options": []}},
        blocks.B_CHANNEL: {blocks.INPUT_ACTION: {"type": "conversations_select", "selected_conversation": channel_id}},
    }


# --------------------------------------------------------------------------- sending


def encoding_of(body: dict[str, Any]) -> str:
    """How Slack sends it: events as JSON, slash commands as form fields, interactions as `payload=`."""
    if body.get("type") == "event_callback":
        return "json"
    if "command" in body and "type" not in body:
        return "form"
    return "payload"


def send(standin: Any, body: dict[str, Any], *, retry_num: Optional[int] = None) -> Any:
    """Sign and post a sample to the app the way Slack would; returns the stand-in's AppResponse."""
    how = encoding_of(body)
    if how == "payload":
        return standin.post_to_app({"payload": json.dumps(body)}, "form", retry_num=retry_num)
    return standin.post_to_app(body, how, retry_num=retry_num)
