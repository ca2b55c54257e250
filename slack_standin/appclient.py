"""The Slack -> app direction: signed events, slash commands and interactions posted to ``request_url``."""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

from .core import _Core
from .models import AppResponse, Workspace, _Trigger
from .signing import content_type_for, signed_headers

logger = logging.getLogger("slack_standin")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Slack does not follow redirects from a request URL; neither do we (3xx comes back as-is)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


# Per-thread delivery target, so one stand-in can drive several app servers at once.
_delivery = threading.local()

# No proxies: the app is local and env proxies would only get in the way.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


@contextlib.contextmanager
def _for_this_thread(name: str, value: Any):  # type: ignore[no-untyped-def]
    """Set a delivery option for this thread for the duration of the block, then restore it."""
    previous = getattr(_delivery, name, None)
    setattr(_delivery, name, value)
    try:
        yield
    finally:
        setattr(_delivery, name, previous)


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)


class _AppClientMixin(_Core):
    #: Where ``send_*`` deliver when called without ``via``: ``"http"`` (signed POST to
    #: ``request_url``) or ``"socket"`` (a Socket Mode envelope, see socketmode.py).
    delivery = "http"

    def _base_url(self) -> str:
        raise NotImplementedError  # provided by SlackStandIn (needs the bound port)

    def _deliver(
        self,
        via: str | None,
        kind: str,
        payload: dict[str, Any],
        http_body: dict[str, Any],
        content_type: str,
        retry_num: int | None = None,
    ) -> Any:
        """Send what a ``send_*`` helper built: signed over HTTP, or as a Socket Mode envelope."""
        via = via or self.delivery
        if via == "socket":
            envelope_type = {"event": "events_api", "slash_command": "slash_commands"}.get(kind, kind)
            return self.socket_send(envelope_type, payload, retry_num=retry_num)  # type: ignore[attr-defined]
        if via != "http":
            raise ValueError("via must be 'http' or 'socket'")
        return self.post_to_app(http_body, content_type, retry_num=retry_num, kind=kind)

    def prepare_request(
        self,
        body: dict[str, Any] | str | bytes,
        content_type: str = "json",
        headers: dict[str, str] | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
    ) -> tuple[bytes, dict[str, str]]:
        """The raw body and signed headers Slack would send for ``body`` (see ``post_to_app``)."""
        mime = content_type_for(content_type)
        if isinstance(body, bytes):
            raw = body
        elif isinstance(body, str):
            raw = body.encode("utf-8")
        elif mime == "application/x-www-form-urlencoded":
            raw = urlencode({k: _form_value(v) for k, v in body.items()}).encode("utf-8")
        else:
            raw = json.dumps(body).encode("utf-8")
        request_headers = signed_headers(self.signing_secret, raw, content_type=mime)
        request_headers["User-Agent"] = "Slackbot 1.0 (+https://api.slack.com/robots)"
        if retry_num is not None:
            request_headers["X-Slack-Retry-Num"] = str(retry_num)
            request_headers["X-Slack-Retry-Reason"] = retry_reason
        request_headers.update(headers or {})
        return raw, request_headers

    @contextlib.contextmanager
    def capturing_requests(self):  # type: ignore[no-untyped-def]
        """Build and sign this thread's deliveries without sending them (load generators replay them).

        Yields a list that fills with ``(raw_body, headers)`` pairs; ``send_*`` return status 0.
        """
        captured: list[tuple[bytes, dict[str, str]]] = []
        with _for_this_thread("captured", captured):
            yield captured

    @contextlib.contextmanager
    def delivering_to(self, url: str):  # type: ignore[no-untyped-def]
        """Deliver this thread's requests to ``url`` instead of ``request_url`` (several app servers)."""
        with _for_this_thread("url", url):
            yield self

    def post_to_app(
        self,
        body: dict[str, Any] | str | bytes,
        content_type: str = "json",
        headers: dict[str, str] | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        kind: str = "raw",
    ) -> AppResponse:
        """Sign ``body`` with the signing secret (v0, current timestamp) and POST it to ``request_url``.

        ``content_type`` is ``"json"``, ``"form"`` or a MIME type; dict bodies are encoded
        accordingly (nested values JSON-encoded in forms). ``retry_num`` adds Slack's
        ``X-Slack-Retry-Num``/``X-Slack-Retry-Reason`` headers. ``headers`` override the
        defaults (e.g. a bad signature). Never holds the lock while waiting for the app,
        because the app typically calls back into the stand-in.
        """
        url = getattr(_delivery, "url", None) or self.request_url
        raw, request_headers = self.prepare_request(body, content_type, headers, retry_num, retry_reason)
        captured = getattr(_delivery, "captured", None)
        if captured is not None:
            captured.append((raw, request_headers))
            return AppResponse(0, {}, b"", payload=body)
        if not url:
            raise RuntimeError("set request_url (where the app receives events) before posting to the app")
        request = urllib.request.Request(url, data=raw, headers=request_headers, method="POST")
        try:
            with _opener.open(request, timeout=self.app_timeout_seconds) as resp:
                status, resp_headers, resp_body = resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as e:
            status, resp_headers, resp_body = e.code, dict(e.headers.items()), e.read()
        logger.debug("sent %s to app -> %s", kind, status)
        with self._lock:
            self._sent.append({"kind": kind, "payload": body, "status": status, "at": time.time()})
        return AppResponse(status, resp_headers, resp_body, payload=body)

    # ------------------------------------------------------------------ events

    def send_event(
        self,
        ws_or_team_id: Workspace | str,
        event: dict[str, Any],
        event_id: str | None = None,
        retry_num: int | None = None,
        via: str | None = None,
    ) -> AppResponse:
        """Deliver ``event`` in Slack's ``event_callback`` envelope (JSON, signed).

        ``event_ts`` is filled in when missing; the envelope (with the generated
        ``event_id``) is available as ``.payload`` on the result. ``via="socket"`` sends it as
        an ``events_api`` Socket Mode envelope instead (every ``send_*`` takes ``via``; the
        default is ``self.delivery``) and returns a ``SocketDelivery``.
        """
        with self._lock:
            ws = self._resolve_ws(ws_or_team_id)
            event = dict(event)
            event.setdefault("event_ts", self._next_ts())
            if isinstance(event.get("user"), str):
                self._ensure_user(ws.team_id, event["user"])
            envelope = self._envelope(ws, event, event_id)
        return self._deliver(via, "event", envelope, envelope, "json", retry_num=retry_num)

    def _envelope(self, ws: Workspace, event: dict[str, Any], event_id: str | None) -> dict[str, Any]:
        org_wide = ws.is_enterprise_install
        return {
            "token": self.verification_token,
            "team_id": ws.team_id,
            "enterprise_id": ws.enterprise_id,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or self._new_id("Ev") + secrets.token_hex(3).upper(),
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": ws.enterprise_id,
                    "team_id": None if org_wide else ws.team_id,
                    "user_id": ws.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": org_wide,
                }
            ],
            "is_ext_shared_channel": False,
            "context_team_id": ws.team_id,
            "context_enterprise_id": ws.enterprise_id,
        }

    def send_mention(
        self,
        ws: Workspace | str,
        text: str = "hello",
        user: str | None = None,
        channel: str | None = None,
        via: str | None = None,
    ) -> AppResponse:
        """Someone @-mentions the bot: an ``app_mention`` event with ``<@BOT> text``.

        The event's ``ts`` (to reply in thread / update) is ``result.payload["event"]["ts"]``.
        """
        with self._lock:
            workspace = self._resolve_ws(ws)
            if workspace.bot_user_id is None:
                raise RuntimeError(f"the app is not installed in {workspace.team_id}; nobody to mention")
            ts = self._next_ts()
            event = {
                "type": "app_mention",
                "user": user or workspace.installer_user_id,
                "text": f"<@{workspace.bot_user_id}> {text}",
                "ts": ts,
                "channel": channel or workspace.default_channel_id,
                "event_ts": ts,
                "team": workspace.team_id,
            }
        return self.send_event(workspace.team_id, event, via=via)

    def send_url_verification(self, challenge: str | None = None) -> AppResponse:
        """Slack's request-URL handshake; the app must echo ``challenge``."""
        body = {
            "token": self.verification_token,
            "challenge": challenge or secrets.token_urlsafe(24),
            "type": "url_verification",
        }
        return self.post_to_app(body, "json", kind="url_verification")

    # ------------------------------------------------------------------ commands & interactivity

    def _new_response_url(self, ws: Workspace, channel_id: str | None, user_id: str) -> str:
        rid = f"{ws.team_id}/{self._new_id('R', (), width=6)}/{secrets.token_hex(12)}"
        self._response_urls[rid] = {"team_id": ws.team_id, "channel_id": channel_id, "user_id": user_id}
        return f"{self._base_url()}/response_url/{rid}"

    def new_response_url(self, team_id: str, channel_id: str | None = None, user_id: str | None = None) -> str:
        """A live response_url of workspace ``team_id``, for payloads a test builds itself."""
        with self._lock:
            ws = self._resolve_ws(team_id)
            return self._new_response_url(ws, channel_id or ws.default_channel_id, user_id or ws.installer_user_id)

    def send_slash_command(
        self,
        ws: Workspace | str,
        command: str = "/poll",
        text: str = "",
        user: str | None = None,
        channel: str | None = None,
        via: str | None = None,
    ) -> AppResponse:
        """Invoke a slash command: form-encoded like Slack, with a live ``response_url`` and ``trigger_id``."""
        with self._lock:
            workspace = self._resolve_ws(ws)
            user_id = self._ensure_user(workspace.team_id, user or workspace.installer_user_id)
            channel_id = channel or workspace.default_channel_id
            known = self._channels.get(channel_id)
            body = {
                "token": self.verification_token,
                "team_id": workspace.team_id,
                "team_domain": workspace.domain,
                "channel_id": channel_id,
                "channel_name": known["name"] if known else "unknown",
                "user_id": user_id,
                "user_name": self._users[user_id].name,
                "command": command,
                "text": text,
                "api_app_id": self.app_id,
                "is_enterprise_install": "true" if workspace.is_enterprise_install else "false",
                "response_url": self._new_response_url(workspace, channel_id, user_id),
                "trigger_id": self._new_trigger(workspace.team_id, user_id),
            }
            if workspace.enterprise_id:  # Slack only sends these for Enterprise Grid workspaces
                body["enterprise_id"] = workspace.enterprise_id
                body["enterprise_name"] = workspace.enterprise_name or ""
        return self._deliver(via, "slash_command", body, body, "form")

    def send_interactive(self, ws: Workspace | str, payload: dict[str, Any], via: str | None = None) -> AppResponse:
        """Send an interaction (block_actions, view_submission, shortcut, ...) as ``payload=<json>``.

        Missing ``team``, ``user``, ``api_app_id``, ``token``, ``enterprise``,
        ``is_enterprise_install`` and ``trigger_id`` are filled in; a ``response_url``
        is added when the payload has a ``channel`` or ``message``, and a view_submission gets
        ``response_urls`` for conversations picked in ``response_url_enabled`` inputs.
        """
        with self._lock:
            workspace = self._resolve_ws(ws)
            payload = dict(payload)
            user = payload.get("user")
            user_id = user.get("id") if isinstance(user, dict) else (user if isinstance(user, str) else None)
            user_id = self._ensure_user(workspace.team_id, user_id or workspace.installer_user_id)
            name = self._users[user_id].name
            if not isinstance(payload.get("user"), dict):
                payload["user"] = {"id": user_id, "username": name, "name": name, "team_id": workspace.team_id}
            team: dict[str, Any] = {"id": workspace.team_id, "domain": workspace.domain}
            if workspace.enterprise_id:
                team.update(enterprise_id=workspace.enterprise_id, enterprise_name=workspace.enterprise_name)
            payload.setdefault("team", team)
            payload.setdefault(
                "enterprise",
                {"id": workspace.enterprise_id, "name": workspace.enterprise_name} if workspace.enterprise_id else None,
            )
            payload.setdefault("api_app_id", self.app_id)
            payload.setdefault("token", self.verification_token)
            payload.setdefault("is_enterprise_install", workspace.is_enterprise_install)
            if payload.get("trigger_id"):
                # A caller-made trigger_id becomes valid, as if Slack had issued it.
                trigger_id = str(payload["trigger_id"])
                self._triggers[trigger_id] = _Trigger(trigger_id, workspace.team_id, user_id, time.time())
            else:
                payload["trigger_id"] = self._new_trigger(workspace.team_id, user_id)
            if "response_url" not in payload and ("channel" in payload or "message" in payload):
                channel = payload.get("channel")
                channel_id = channel.get("id") if isinstance(channel, dict) else channel
                payload["response_url"] = self._new_response_url(workspace, channel_id, user_id)
            if payload.get("type") == "view_submission" and "response_urls" not in payload:
                payload["response_urls"] = self._view_response_urls(workspace, payload.get("view"), user_id)
        return self._deliver(via, "interactive", payload, {"payload": json.dumps(payload)}, "form")

    def _view_response_urls(self, ws: Workspace, view: Any, user_id: str) -> list[dict[str, Any]]:
        """Like Slack: a response_url per conversation picked in a ``response_url_enabled`` input."""
        if not isinstance(view, dict):
            return []
        values = (view.get("state") or {}).get("values") or {}
        urls = []
        for block in view.get("blocks") or []:
            element = block.get("element") if isinstance(block, dict) else None
            if block.get("type") != "input" or not isinstance(element, dict) or not element.get("response_url_enabled"):
                continue
            state = (values.get(block.get("block_id")) or {}).get(element.get("action_id")) or {}
            channel_id = state.get("selected_conversation") or state.get("selected_channel")
            if channel_id:
                urls.append({
                    "block_id": block.get("block_id"),
                    "action_id": element.get("action_id"),
                    "channel_id": channel_id,
                    "response_url": self._new_response_url(ws, channel_id, user_id),
                })
        return urls
