"""Web API methods (``POST /api/<method>``): auth, chat, views, and friends.

Request pipeline, in order: latency -> unknown method -> injected failure -> rate limit ->
token checks -> method. Every request ends up in ``calls``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable

from .core import _ApiError, _Core
from .http import BodyError, Response, json_response, parse_params
from .models import ApiCall, _Token, redact

logger = logging.getLogger("slack_standin")

#: Methods the stand-in implements; anything else answers ``unknown_method``.
SUPPORTED_METHODS = (
    "api.test",
    "oauth.v2.access",
    "auth.test",
    "auth.revoke",
    "apps.uninstall",
    "apps.connections.open",
    "chat.postMessage",
    "chat.update",
    "chat.postEphemeral",
    "chat.delete",
    "views.open",
    "views.update",
    "views.push",
    "views.publish",
    "conversations.info",
    "users.info",
    "reactions.add",
)


@dataclass
class _Ctx:
    """One Web API request while it is being answered."""

    method: str
    params: dict[str, Any]
    token: str | None
    basic: tuple[str, str] | None
    now: float
    record: _Token | None
    team_id: str | None = None
    enterprise_id: str | None = None


def _json_param(params: dict[str, Any], name: str, error: str) -> Any:
    """Form bodies carry blocks/views as JSON strings; JSON bodies carry them as objects."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as e:
            raise _ApiError(error) from e
    return value


def _text(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    return "" if value is None else str(value)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def _public_message(msg: dict[str, Any]) -> dict[str, Any]:
    keys = ("type", "text", "user", "bot_id", "app_id", "ts", "team", "blocks", "attachments", "thread_ts", "edited")
    return {k: copy.deepcopy(msg[k]) for k in keys if msg.get(k) is not None}


class _WebApiMixin(_Core):
    # ------------------------------------------------------------------ pipeline

    def _handle_api(self, method: str, query: str, headers: dict[str, str], body: bytes) -> Response:
        """Answer one ``/api/<method>`` request and record it."""
        if self.latency_seconds > 0:
            time.sleep(self.latency_seconds)
        now = time.time()
        body_error: str | None = None
        try:
            params = parse_params(query, headers.get("content-type", ""), body)
        except BodyError as e:
            params, body_error = {}, e.error
        token, basic = self._credentials(headers, params)
        with self._lock:
            record = self._tokens.get(token) if token else None
            ctx = _Ctx(method, params, token, basic, now, record)
            if record is not None:
                ctx.team_id, ctx.enterprise_id = record.team_id, record.enterprise_id
            status, data, extra_headers = self._dispatch(ctx, body_error)
            known = record is not None and record.kind != "refresh"
            self._calls.append(
                ApiCall(
                    method=method,
                    params=copy.deepcopy(params),
                    token=token,
                    team_id=ctx.team_id,
                    enterprise_id=ctx.enterprise_id,
                    user_id=record.user_id if known and record else None,
                    token_kind=record.kind if known and record else None,
                    ok=bool(data.get("ok")),
                    error=data.get("error"),
                    at=now,
                    status=status,
                )
            )
        logger.debug(
            "api %s team=%s token=%s -> %s %s",
            method,
            ctx.team_id,
            redact(token),
            status,
            data.get("error") or "ok",
        )
        return json_response(data, status, extra_headers)

    @staticmethod
    def _credentials(headers: dict[str, str], params: dict[str, Any]) -> tuple[str | None, tuple[str, str] | None]:
        token: str | None = None
        basic: tuple[str, str] | None = None
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip() or None
        elif auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")
                basic = (user, password)
            except (binascii.Error, UnicodeDecodeError):
                basic = None
        body_token = params.pop("token", None)
        if token is None and body_token:
            token = str(body_token)
        return token, basic

    def _dispatch(self, ctx: _Ctx, body_error: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        if ctx.method not in SUPPORTED_METHODS:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        failure = self._take_failure(ctx.method)
        if failure is not None:
            return failure.status, {"ok": False, "error": failure.error}, {}
        if body_error is not None:
            return 200, {"ok": False, "error": body_error}, {}
        bucket = ctx.team_id or ctx.enterprise_id or "-"
        retry_after = self._rate_limited(ctx.method, bucket, ctx.now)
        if retry_after is not None:
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
        handler: Callable[[_Ctx], dict[str, Any]] = getattr(self, "_api_" + ctx.method.replace(".", "_"))
        try:
            data = handler(ctx)
        except _ApiError as e:
            return 200, {"ok": False, "error": e.error, **e.extra}, {}
        headers = {}
        if ctx.record is not None and ctx.record.kind != "refresh":
            headers["X-OAuth-Scopes"] = ctx.record.scope
        return 200, {"ok": True, **data}, headers

    # ------------------------------------------------------------------ shared checks

    def _auth(self, ctx: _Ctx) -> _Token:
        """Validate the calling token the way Slack reports problems."""
        if not ctx.token:
            raise _ApiError("not_authed")
        rec = ctx.record
        if rec is None or rec.kind == "refresh":
            raise _ApiError("invalid_auth")
        if rec.kind == "app":  # app-level tokens only open Socket Mode connections
            raise _ApiError("not_allowed_token_type")
        if not rec.alive:
            raise _ApiError(rec.dead_error)
        if rec.expires_at is not None and ctx.now >= rec.expires_at:
            raise _ApiError("token_expired")
        return rec

    def _can_see_team(self, rec: _Token, team_id: str) -> bool:
        if rec.team_id is not None:
            return rec.team_id == team_id
        ws = self._workspaces.get(team_id)
        return ws is not None and ws.enterprise_id == rec.enterprise_id

    def _default_team(self, ctx: _Ctx, rec: _Token) -> str | None:
        """The workspace a call acts on: the token's, or for org-wide tokens the ``team_id`` param / first workspace."""
        if rec.team_id is not None:
            return rec.team_id
        wanted = ctx.params.get("team_id")
        if wanted and self._can_see_team(rec, str(wanted)):
            return str(wanted)
        for ws in self._workspaces.values():
            if ws.enterprise_id == rec.enterprise_id:
                return ws.team_id
        return None

    def _channel(self, ctx: _Ctx, rec: _Token, channel_id: str) -> dict[str, Any]:
        """Find (or, unless ``strict_channels``, create) a channel the token may use."""
        if not channel_id:
            raise _ApiError("channel_not_found")
        channel = self._channels.get(channel_id)
        if channel is None:
            team_id = None if self.strict_channels else self._default_team(ctx, rec)
            if team_id is None:
                raise _ApiError("channel_not_found")
            channel = self._create_channel(team_id, channel_id=channel_id)
        if not self._can_see_team(rec, channel["team_id"]):
            raise _ApiError("channel_not_found")
        ctx.team_id = channel["team_id"]
        return channel

    def _check_member(self, rec: _Token, team_id: str, channel_id: str) -> None:
        allowed = self._bot_channels.get(team_id)
        if rec.kind == "bot" and allowed is not None and channel_id not in allowed:
            raise _ApiError("not_in_channel")

    def _find_message(self, team_id: str, channel_id: str, ts: str) -> dict[str, Any]:
        for msg in self._messages.get(team_id, []):
            if msg["channel"] == channel_id and msg["ts"] == ts and not msg["deleted"]:
                return msg
        raise _ApiError("message_not_found")

    @staticmethod
    def _is_author(rec: _Token, msg: dict[str, Any]) -> bool:
        if rec.kind == "bot":
            return msg.get("bot_id") == rec.bot_id
        return msg.get("bot_id") is None and msg.get("user") == rec.user_id

    def _content(self, params: dict[str, Any]) -> tuple[str, Any, Any]:
        text = _text(params, "text")
        blocks = _json_param(params, "blocks", "invalid_blocks_format")
        attachments = _json_param(params, "attachments", "invalid_attachments")
        if blocks is not None and not isinstance(blocks, list):
            raise _ApiError("invalid_blocks")
        if attachments is not None and not isinstance(attachments, list):
            raise _ApiError("invalid_attachments")
        if not text and not blocks and not attachments:
            raise _ApiError("no_text")
        return text, blocks, attachments

    # ------------------------------------------------------------------ api / auth / apps

    def _api_api_test(self, ctx: _Ctx) -> dict[str, Any]:
        return {"args": {k: v for k, v in ctx.params.items() if isinstance(v, (str, int, float, bool))}}

    def _api_auth_test(self, ctx: _Ctx) -> dict[str, Any]:
        rec = self._auth(ctx)
        user = self._users.get(rec.user_id)
        data: dict[str, Any] = {"user": user.name if user else rec.user_id, "user_id": rec.user_id}
        if rec.team_id is not None:
            ws = self._workspaces[rec.team_id]
            data.update(url=f"https://{ws.domain}.slack.com/", team=ws.name, team_id=ws.team_id)
        else:
            org = self._enterprises[rec.enterprise_id or ""]
            data.update(url=f"https://{org.domain}.enterprise.slack.com/", team=None, team_id=None)
        if rec.kind == "bot":
            data["bot_id"] = rec.bot_id
        if rec.enterprise_id is not None:
            data["enterprise_id"] = rec.enterprise_id
        data["is_enterprise_install"] = rec.is_enterprise_install
        return data

    def _api_auth_revoke(self, ctx: _Ctx) -> dict[str, Any]:
        rec = self._auth(ctx)
        if _truthy(ctx.params.get("test")):
            return {"revoked": False}
        rec.alive = False
        rec.dead_error = "token_revoked"
        return {"revoked": True}

    def _api_apps_uninstall(self, ctx: _Ctx) -> dict[str, Any]:
        rec = self._auth(ctx)
        if ctx.params.get("client_id") != self.client_id:
            raise _ApiError("invalid_client_id")
        if ctx.params.get("client_secret") != self.client_secret:
            raise _ApiError("bad_client_secret")
        self._uninstall_key(rec.install_key)
        return {}

    # ------------------------------------------------------------------ chat

    def _api_chat_postMessage(self, ctx: _Ctx) -> dict[str, Any]:
        rec = self._auth(ctx)
        channel = self._channel(ctx, rec, _text(ctx.params, "channel"))
        team_id = channel["team_id"]
        self._check_member(rec, team_id, channel["id"])
        text, blocks, attachments = self._content(ctx.params)
        ts = self._next_ts()
        msg: dict[str, Any] = {
            "type": "message",
            "ts": ts,
            "channel": channel["id"],
            "team": team_id,
            "text": text,
            "blocks": blocks,
            "attachments": attachments,
            "thread_ts": _text(ctx.params, "thread_ts") or None,
            "user": rec.user_id,
            "bot_id": rec.bot_id,
            "app_id": self.app_id if rec.kind == "bot" else None,
            "edited": None,
            "history": [],
            "reactions": [],
            "deleted": False,
            "params": copy.deepcopy(ctx.params),
        }
        self._messages.setdefault(team_id, []).append(msg)
        return {"channel": channel["id"], "ts": ts, "message": _public_message(msg)}

    def _api_chat_update(self, ctx: _Ctx) -> dict[str, Any]:
        rec = self._auth(ctx)
        channel = self._channel(ctx, rec, _text(ctx.params, "channel"))
        team_id = channel["team_id"]
        ts = _text(ctx.params, "ts")
        if not ts:
            raise _ApiError("message_not_found")
        msg = self._find_message(team_id, channel["id"], ts)
        if not self._is_author(rec, msg):
            raise _ApiError("cant_update_message")
        self._check_member(rec, team_id, channel["id"])
        text, blocks, attachments = self._content(ctx.params)
        msg["history"].append({"text": msg["text"], "blocks": msg["blocks"], "attachments": msg["attachments"]})
        msg.update(text=text, blocks=blocks, attachments=attachments, edited={"user": rec.user_id, "ts": self._next_ts()})
        return {"channel": channel["id"], "ts": ts, "text": text, "message": _public_message(msg)}

    def _api_chat_delete(self, ctx: _Ctx) -> dict[str, Any]:
        rec = self._auth(ctx)
        channel = self._channel(ctx, rec, _text(ctx.params, "channel"))
        msg = self._find_message(channel["team_id"], channel["id"], _text(ctx.params, "ts"))
        if not self._is_author(rec, msg):
            raise _ApiError("cant_delete_message")
        msg["deleted"] = True
        return {"channel": channel["id"], "ts": msg["ts"]}

    def _api_chat_postEphemeral(self, ctx: _Ctx) -> dict[str, Any]:
        rec = self._auth(ctx)
        channel = self._channel(ctx, rec, _text(ctx.params, "channel"))
        user = _text(ctx.params, "user")
        if not user:
            raise _ApiError("user_not_found")
        text, blocks, attachments = self._content(ctx.params)
        ts = self._next_ts()
        self._ephemerals.setdefault(channel["team_id"], []).append(
            {
                "message_ts": ts,
                "channel": channel["id"],
                "user": user,
                "text": text,
                "blocks": blocks,
                "attachments": attachments,
                "thread_ts": _text(ctx.params, "thread_ts") or None,
                "sender": rec.user_id,
            }
        )
        return {"message_ts": ts}

    def _api_reactions_add(self, ctx: _Ctx) -> dict[str, Any]:
        rec = self._auth(ctx)
        channel = self._channel(ctx, rec, _text(ctx.params, "channel"))
        name = _text(ctx.params, "name").strip(":")
        if not name:
            raise _ApiError("invalid_name")
        msg = self._find_message(channel["team_id"], channel["id"], _text(ctx.params, "timestamp"))
        for reaction in msg["reactions"]:
            if reaction["name"] == name:
                if rec.user_id in reaction["users"]:
                    raise _ApiError("already_reacted")
                reaction["users"].append(rec.user_id)
                reaction["count"] += 1
                return {}
        msg["reactions"].append({"name": name, "users": [rec.user_id], "count": 1})
        return {}

    # ------------------------------------------------------------------ directory reads

    def _api_conversations_info(self, ctx: _Ctx) -> dict[str, Any]:
        rec = self._auth(ctx)
        channel = self._channel(ctx, rec, _text(ctx.params, "channel"))
        allowed = self._bot_channels.get(channel["team_id"])
        ws = self._workspaces[channel["team_id"]]
        return {
            "channel": {
                "id": channel["id"],
                "name": channel["name"],
                "is_channel": True,
                "is_private": False,
                "is_archived": False,
                "is_general": channel["name"] == "general",
                "is_member": allowed is None or channel["id"] in allowed,
                "created": channel["created"],
                "context_team_id": ws.team_id,
                "shared_team_ids": [ws.team_id],
            }
        }

    def _api_users_info(self, ctx: _Ctx) -> dict[str, Any]:
        rec = self._auth(ctx)
        user = self._users.get(_text(ctx.params, "user"))
        if user is None or not any(self._can_see_team(rec, t) for t in user.teams):
            raise _ApiError("user_not_found")
        return {"user": user.public()}

    # ------------------------------------------------------------------ views

    def _view_payload(self, ctx: _Ctx) -> dict[str, Any]:
        view = _json_param(ctx.params, "view", "invalid_arguments")
        if not isinstance(view, dict) or not view.get("type"):
            raise _ApiError("invalid_arguments")
        return view

    def _use_trigger(self, ctx: _Ctx, rec: _Token) -> tuple[str, str | None]:
        trigger_id = _text(ctx.params, "trigger_id")
        if not trigger_id:
            raise _ApiError("invalid_arguments")
        trigger = self._triggers.get(trigger_id)
        if trigger is None or not self._can_see_team(rec, trigger.team_id):
            raise _ApiError("invalid_trigger_id")
        if ctx.now - trigger.created_at > self.trigger_lifetime_seconds:
            raise _ApiError("expired_trigger_id")
        ctx.team_id = trigger.team_id
        return trigger.team_id, trigger.user_id

    def _store_view(
        self,
        rec: _Token,
        team_id: str,
        user_id: str | None,
        view: dict[str, Any],
        via: str,
        view_id: str | None = None,
        previous_view_id: str | None = None,
    ) -> dict[str, Any]:
        external_id = view.get("external_id")
        if external_id:
            for vid, stored in self._views.items():
                if vid != view_id and stored["team_id"] == team_id and stored["view"].get("external_id") == external_id:
                    raise _ApiError("duplicate_external_id")
        vid = view_id or self._new_id("V", self._views, width=6)
        root = self._views[vid]["view"]["root_view_id"] if vid in self._views else vid
        obj = {
            "id": vid,
            "team_id": team_id,
            "type": view["type"],
            "title": view.get("title"),
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": external_id or "",
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "root_view_id": root,
            "previous_view_id": previous_view_id,
            "app_id": self.app_id,
            "app_installed_team_id": team_id,
            "bot_id": rec.bot_id,
        }
        self._views[vid] = {"view": obj, "team_id": team_id, "user_id": user_id, "via": via}
        return copy.deepcopy(obj)

    def _api_views_open(self, ctx: _Ctx) -> dict[str, Any]:
        rec = self._auth(ctx)
        team_id, user_id = self._use_trigger(ctx, rec)
        view = self._view_payload(ctx)
        if view["type"] != "modal":
            raise _ApiError("invalid_arguments")
        return {"view": self._store_view(rec, team_id, user_id, view, "views.open")}

    def _api_views_push(self, ctx: _Ctx) -> dict[str, Any]:
        rec = self._auth(ctx)
        team_id, user_id = self._use_trigger(ctx, rec)
        view = self._view_payload(ctx)
        if view["type"] != "modal":
            raise _ApiError("invalid_arguments")
        return {"view": self._store_view(rec, team_id, user_id, view, "views.push")}

    def _api_views_update(self, ctx: _Ctx) -> dict[str, Any]:
        rec = self._auth(ctx)
        view_id = _text(ctx.params, "view_id")
        external_id = _text(ctx.params, "external_id")
        if not view_id and not external_id:
            raise _ApiError("invalid_arguments")
        stored = None
        for vid, candidate in self._views.items():
            if (view_id and vid == view_id) or (
                not view_id and external_id and candidate["view"].get("external_id") == external_id
            ):
                stored = candidate
                break
        if stored is None or not self._can_see_team(rec, stored["team_id"]):
            raise _ApiError("not_found")
        ctx.team_id = stored["team_id"]
        expected = _text(ctx.params, "hash")
        if expected and expected != stored["view"]["hash"]:
            raise _ApiError("hash_conflict")
        view = self._view_payload(ctx)
        return {
            "view": self._store_view(
                rec,
                stored["team_id"],
                stored["user_id"],
                view,
                stored["via"],
                view_id=stored["view"]["id"],
                previous_view_id=stored["view"]["previous_view_id"],
            )
        }

    def _api_views_publish(self, ctx: _Ctx) -> dict[str, Any]:
        rec = self._auth(ctx)
        user_id = _text(ctx.params, "user_id")
        if not user_id:
            raise _ApiError("invalid_arguments")
        view = self._view_payload(ctx)
        if view["type"] != "home":
            raise _ApiError("invalid_arguments")
        user = self._users.get(user_id)
        team_id = next((t for t in sorted(user.teams) if self._can_see_team(rec, t)), None) if user else None
        if team_id is None:
            team_id = self._default_team(ctx, rec)
            if team_id is None:
                raise _ApiError("user_not_found")
            self._ensure_user(team_id, user_id)
        ctx.team_id = team_id
        existing = next(
            (
                vid
                for vid, stored in self._views.items()
                if stored["team_id"] == team_id and stored["user_id"] == user_id and stored["view"]["type"] == "home"
            ),
            None,
        )
        expected = _text(ctx.params, "hash")
        if existing and expected and expected != self._views[existing]["view"]["hash"]:
            raise _ApiError("hash_conflict")
        return {"view": self._store_view(rec, team_id, user_id, view, "views.publish", view_id=existing)}
