"""The sandbox's web console: a small Slack client in the browser, served by the stand-in.

Why: a newcomer should see the whole loop (install, mention, slash command, buttons, modals,
App Home, token rotation, uninstall) without a Slack account. Everything the console does goes
through the stand-in's own machinery: ``send_event`` / ``send_slash_command`` /
``send_interactive`` (real signed requests to the app), the Web API the app calls back, and
the OAuth consent page. The console only adds a UI and a little bookkeeping Slack's client
would do (which modal is open, what a slash command answered in its acknowledgement).

Attach it to a started stand-in (``SlackStandIn.console``); it then answers:

    GET  /  and  /console               the page (plain HTML, CSS and JS; nothing external)
    GET  /console/console.js, .css      its script and style sheet
    GET  /console/api/state             workspaces, the chosen channel/home/modal, the call log
    POST /console/api/<action>          workspaces, users, send, action, submit, close, home,
                                        shortcut, fast_forward, uninstall (JSON bodies)

POSTs must be JSON from the console's own origin (a page elsewhere cannot drive it), and every
console route checks the Host header (no DNS rebinding). The log shows tokens by their last
four characters only; no full token or secret ever leaves through the console.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import time
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from . import console_page
from .http import Response, json_response
from .models import Workspace

logger = logging.getLogger("slack_standin")

#: Friendly names for workspaces created from the console without one.
WORKSPACE_NAMES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka", "Tyrell", "Soylent")
#: At most this many log entries per answer (the page keeps a rolling window).
LOG_LIMIT = 300

_USER_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")


class ConsoleError(Exception):
    """A problem to show the person using the console (answered 400 with the message)."""


def _last4(value: Any) -> str | None:
    return f"…{str(value)[-4:]}" if value else None


def _escape(text: str) -> str:
    """What Slack's client does to typed text before sending it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Console:
    """The console for one stand-in and the app wired to it.

    ``app_url`` is where the app serves ``/slack/install``; ``bot_name``, ``commands`` (manifest
    ``features.slash_commands``) and ``shortcuts`` (``features.shortcuts``) describe the app so
    the console can offer them like Slack's client does.
    """

    def __init__(
        self,
        standin: Any,
        *,
        app_url: str,
        bot_name: str = "the app",
        commands: list[dict[str, Any]] | None = None,
        shortcuts: list[dict[str, Any]] | None = None,
    ) -> None:
        self.standin = standin
        self.app_url = app_url.rstrip("/")
        self.bot_name = bot_name
        self.commands = [
            {"command": str(c["command"]), "description": str(c.get("description") or ""),
             "usage_hint": str(c.get("usage_hint") or "")}
            for c in (commands or []) if c.get("command")
        ]
        self.shortcuts = [
            {"name": str(s.get("name") or s["callback_id"]), "type": str(s.get("type") or "global"),
             "callback_id": str(s["callback_id"]), "description": str(s.get("description") or "")}
            for s in (shortcuts or []) if s.get("callback_id")
        ]
        # Slack-client bookkeeping (in memory: like a reloaded Slack client, it starts afresh).
        self._closed_views: set[str] = set()
        self._view_overlays: dict[str, dict[str, Any]] = {}  # response_action update/push results
        self._acks: dict[str, list[dict[str, Any]]] = {}  # slash command answers, per workspace
        self._overlay_ids = 0
        self._actions: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "workspaces": self._create_workspace,
            "users": self._add_user,
            "send": self._send,
            "action": self._action,
            "submit": self._submit,
            "close": self._close,
            "home": self._home,
            "shortcut": self._shortcut,
            "fast_forward": self._fast_forward,
            "uninstall": self._uninstall,
        }

    # ------------------------------------------------------------------ routing

    def handles(self, path: str) -> bool:
        return path == "/" or path == "/console" or path.startswith("/console/")

    def handle(self, verb: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        parts = urlsplit(target)
        path = parts.path
        if not self._local_host(headers.get("host", "")):
            return json_response({"ok": False, "error": "The console answers on 127.0.0.1 or localhost only."}, 421)
        if verb == "GET":
            if path in ("/", "/console", "/console/"):
                return self._static(console_page.render_page(), "text/html; charset=utf-8", page=True)
            if path == "/console/console.js":
                return self._static(console_page.SCRIPT, "text/javascript; charset=utf-8")
            if path == "/console/console.css":
                return self._static(console_page.STYLE, "text/css; charset=utf-8")
            if path == "/console/api/state":
                return self._json(self.state(dict(parse_qsl(parts.query))))
        if verb == "POST" and path.startswith("/console/api/"):
            action = self._actions.get(path[len("/console/api/"):])
            if action is None:
                return json_response({"ok": False, "error": "not_found"}, 404)
            problem = self._refuse_post(headers)
            if problem:
                return json_response({"ok": False, "error": problem}, 403)
            try:
                data = json.loads(body.decode("utf-8") or "{}")
                if not isinstance(data, dict):
                    raise ConsoleError("Expected a JSON object.")
                return self._json({"ok": True, **action(data)})
            except (ConsoleError, ValueError, KeyError) as error:
                message = str(error) if isinstance(error, ConsoleError) else f"Bad request: {type(error).__name__} {error}"
                return json_response({"ok": False, "error": message}, 400)
        return json_response({"ok": False, "error": "not_found"}, 404)

    def _port(self) -> int:
        return int(urlsplit(self.standin.url).port or 80)

    def _local_host(self, host: str) -> bool:
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "")
        return name in ("127.0.0.1", "localhost") and (not port or port == str(self._port()))

    def _refuse_post(self, headers: dict[str, str]) -> str | None:
        if not headers.get("content-type", "").startswith("application/json"):
            return "The console takes JSON."
        origin = headers.get("origin")
        if origin:
            parsed = urlsplit(origin)
            if parsed.hostname not in ("127.0.0.1", "localhost") or parsed.port != self._port():
                return "Requests from other sites are refused."
        return None

    @staticmethod
    def _json(data: Any) -> Response:
        response = json_response(data)
        response.headers["Cache-Control"] = "no-store"
        return response

    def _static(self, text: str, content_type: str, page: bool = False) -> Response:
        headers = {"Content-Type": content_type, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        if page:
            headers.update({
                "Content-Security-Policy": (
                    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
                ),
                "Referrer-Policy": "no-referrer",
            })
        return Response(200, text.encode("utf-8"), headers)

    # ------------------------------------------------------------------ state

    def state(self, query: dict[str, str]) -> dict[str, Any]:
        """Everything the page shows, in one answer (the page polls it)."""
        standin = self.standin
        with standin._lock:
            workspaces = [self._workspace_summary(ws) for ws in standin._workspaces.values()]
            log, log_next, log_reset = self._log(query)
        data: dict[str, Any] = {
            "app": {"url": self.app_url, "install_url": f"{self.app_url}/slack/install", "bot_name": self.bot_name},
            "commands": self.commands,
            "shortcuts": self.shortcuts,
            "workspaces": workspaces,
            "workspace": None,
            "log": log,
            "log_next": log_next,
            "log_reset": log_reset,
        }
        team_id = query.get("team")
        if team_id and team_id in standin._workspaces:
            data["workspace"] = self._workspace_detail(team_id, query.get("user"), query.get("channel"))
        return data

    def _workspace_summary(self, ws: Workspace) -> dict[str, Any]:
        return {
            "team_id": ws.team_id,
            "name": ws.name,
            "installed": ws.installed,
            "enterprise_id": ws.enterprise_id,
            "install_url": f"{self.app_url}/slack/install?team={ws.team_id}",
        }

    def _people(self, team_id: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Members (people first, in creation order) and a name for every user id, bots included."""
        users, names = [], {}
        for user in self.standin._users.values():
            if team_id not in user.teams:
                continue
            names[user.user_id] = self.bot_name if user.is_bot else user.name
            if not user.is_bot:
                users.append({"id": user.user_id, "name": user.name})
        return users, names

    def _workspace_detail(self, team_id: str, user_id: str | None, channel_id: str | None) -> dict[str, Any]:
        standin = self.standin
        with standin._lock:
            ws = standin._workspaces[team_id]
            users, names = self._people(team_id)
            channels = [
                {"id": c["id"], "name": c["name"]} for c in standin._channels.values() if c["team_id"] == team_id
            ]
        if user_id not in {u["id"] for u in users}:
            user_id = users[0]["id"] if users else None
        if channel_id not in {c["id"] for c in channels}:
            channel_id = ws.default_channel_id
        views = standin.views(team_id)
        return {
            **self._workspace_summary(ws),
            "bot_user_id": ws.bot_user_id,
            "users": users,
            "names": names,
            "channels": channels,
            "user": user_id,
            "channel": channel_id,
            "timeline": self._timeline(team_id, channel_id, user_id),
            "modal": self._open_modal(views, user_id),
            "home": next(
                (self._public_view(v) for v in reversed(views) if v["type"] == "home" and v["user_id"] == user_id),
                None,
            ),
        }

    def _timeline(self, team_id: str, channel_id: str, viewer: str | None) -> list[dict[str, Any]]:
        """The channel as the viewer sees it: messages, plus what only they can see."""
        items: list[dict[str, Any]] = []
        for m in self.standin.messages(team_id, channel=channel_id):
            items.append({
                "kind": "message", "ts": m["ts"], "at": float(m["ts"]), "user": m["user"],
                "bot": m["bot_id"] is not None, "text": m["text"], "blocks": m["blocks"],
                "thread_ts": m["thread_ts"] if m["thread_ts"] != m["ts"] else None,
                "edited": m["edited"] is not None, "reactions": m["reactions"],
            })
        for e in self.standin.ephemerals(team_id):
            if e["channel"] == channel_id and e["user"] == viewer:
                items.append({
                    "kind": "ephemeral", "ts": e["message_ts"], "at": float(e["message_ts"]), "user": e["sender"],
                    "bot": True, "text": e["text"], "blocks": e["blocks"], "thread_ts": e["thread_ts"],
                })
        for r in self.standin.responses(team_id):
            body = r["body"] if isinstance(r["body"], dict) else {"text": str(r["body"])}
            in_channel = body.get("response_type") == "in_channel"
            if r["channel_id"] == channel_id and (in_channel or r["user_id"] == viewer):
                items.append(self._reply_item("response", r["at"], body, in_channel))
        for a in self._acks.get(team_id, []):
            if a["channel"] == channel_id and (a["in_channel"] or a["user"] == viewer):
                items.append(self._reply_item("ack", a["at"], a["body"], a["in_channel"]))
        items.sort(key=lambda item: item["at"])
        return items

    def _reply_item(self, kind: str, at: float, body: dict[str, Any], in_channel: bool) -> dict[str, Any]:
        return {
            "kind": kind if not in_channel else "message", "ts": f"{at:.6f}", "at": at, "user": None, "bot": True,
            "text": str(body.get("text") or ""), "blocks": body.get("blocks"), "thread_ts": None,
            "only_you": not in_channel,
        }

    @staticmethod
    def _public_view(view: dict[str, Any]) -> dict[str, Any]:
        keys = ("id", "type", "title", "submit", "close", "blocks", "callback_id", "private_metadata",
                "hash", "root_view_id", "notify_on_close", "external_id")
        return {k: copy.deepcopy(view.get(k)) for k in keys}

    def _open_modal(self, views: list[dict[str, Any]], viewer: str | None) -> dict[str, Any] | None:
        """The modal on top of the viewer's stack (the newest one still open), if any."""
        stack = [v for v in views if v["type"] == "modal" and v["user_id"] == viewer]
        stack += [v for v in self._view_overlays.values() if v.get("_pushed") and v["user_id"] == viewer]
        stack.sort(key=lambda v: v.get("_order", 0))
        for view in reversed(stack):
            if view["id"] in self._closed_views:
                continue
            shown = self._view_overlays.get(view["id"], view)
            if shown is not view and shown.get("_base_hash") not in (None, view.get("hash")):
                shown = view  # the app updated the view since: its version wins
            return self._public_view(shown)
        return None

    def _log(self, query: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, int], bool]:
        """Web API calls the app made (and deliveries to it) after the page's cursors."""
        standin = self.standin
        calls, sent = standin._calls, standin._sent
        try:
            after_calls = max(int(query.get("calls_after", 0)), 0)
            after_sent = max(int(query.get("sent_after", 0)), 0)
        except ValueError:
            after_calls = after_sent = 0
        reset = after_calls > len(calls) or after_sent > len(sent)  # someone cleared the records
        if reset:
            after_calls = after_sent = 0
        after_calls = max(after_calls, len(calls) - LOG_LIMIT)
        after_sent = max(after_sent, len(sent) - LOG_LIMIT)
        entries = [self._call_entry(i, calls[i]) for i in range(after_calls, len(calls))]
        entries += [self._sent_entry(i, sent[i]) for i in range(after_sent, len(sent))]
        entries.sort(key=lambda e: e["at"])
        return entries, {"calls": len(calls), "sent": len(sent)}, reset

    @staticmethod
    def _call_entry(index: int, call: Any) -> dict[str, Any]:
        entry = {
            "id": f"c{index}", "dir": "api", "at": call.at, "method": call.method,
            "team": call.team_id or call.enterprise_id, "token": _last4(call.token), "token_kind": call.token_kind,
            "ok": call.ok, "error": call.error, "status": call.status, "note": None, "refresh": False,
        }
        if call.method == "oauth.v2.access":
            if call.params.get("grant_type") == "refresh_token":
                entry.update(note="token rotation (refresh_token grant)", refresh=True,
                             token=_last4(call.params.get("refresh_token")), token_kind="refresh")
            else:
                entry.update(note="install (code exchange)", token=None)
        return entry

    @staticmethod
    def _sent_entry(index: int, sent: dict[str, Any]) -> dict[str, Any]:
        payload = sent.get("payload") if isinstance(sent.get("payload"), dict) else {}
        if isinstance(payload.get("payload"), str):  # interactions travel as a form field holding JSON
            try:
                payload = json.loads(payload["payload"])
            except ValueError:
                payload = {}
        kind = sent.get("kind")
        if kind == "event":
            what, team = (payload.get("event") or {}).get("type"), payload.get("team_id")
        elif kind == "slash_command":
            what, team = f"{payload.get('command')} command", payload.get("team_id")
        elif kind == "interactive":
            actions = payload.get("actions") or []
            detail = actions[0].get("action_id") if actions else (payload.get("view") or {}).get("callback_id")
            detail = detail or payload.get("callback_id")
            what = f"{payload.get('type')}" + (f" ({detail})" if detail else "")
            team = (payload.get("team") or {}).get("id")
        else:
            what, team = kind, None
        return {"id": f"s{index}", "dir": "app", "at": sent.get("at", 0.0), "method": what, "team": team,
                "status": sent.get("status"), "ok": sent.get("status") == 200}

    # ------------------------------------------------------------------ helpers

    def _ws(self, data: dict[str, Any]) -> Workspace:
        team_id = str(data.get("team") or "")
        with self.standin._lock:
            ws = self.standin._workspaces.get(team_id)
        if ws is None:
            raise ConsoleError(f"No workspace {team_id!r}.")
        return ws

    def _member(self, ws: Workspace, data: dict[str, Any]) -> str:
        user_id = str(data.get("user") or "")
        with self.standin._lock:
            user = self.standin._users.get(user_id)
            if user is None or ws.team_id not in user.teams or user.is_bot:
                raise ConsoleError(f"{user_id or 'Nobody'} is not a person in {ws.name}.")
        return user_id

    def _channel(self, ws: Workspace, data: dict[str, Any]) -> dict[str, Any]:
        channel_id = str(data.get("channel") or ws.default_channel_id)
        with self.standin._lock:
            channel = self.standin._channels.get(channel_id)
        if channel is None or channel["team_id"] != ws.team_id:
            raise ConsoleError(f"No channel {channel_id!r} in {ws.name}.")
        return dict(channel)

    @staticmethod
    def _installed(ws: Workspace) -> None:
        if not ws.installed:
            raise ConsoleError(f"The app is not installed in {ws.name}: install it first.")

    @staticmethod
    def _answer(response: Any) -> dict[str, Any]:
        """What the app answered to a delivery, for the page."""
        status = response.status
        return {"status": status, "app_ok": status == 200,
                "app_error": None if status == 200 else f"The app answered HTTP {status}."}

    def _find_view(self, ws: Workspace, view_id: str) -> dict[str, Any]:
        overlay = self._view_overlays.get(view_id)
        for view in self.standin.views(ws.team_id):
            if view["id"] == view_id:
                if overlay is not None and overlay.get("_base_hash") in (None, view.get("hash")):
                    return overlay
                return view
        if overlay is not None:
            return overlay
        raise ConsoleError(f"No view {view_id!r} in {ws.name}.")

    # ------------------------------------------------------------------ actions

    def _create_workspace(self, data: dict[str, Any]) -> dict[str, Any]:
        name = str(data.get("name") or "").strip()[:60]
        with self.standin._lock:
            if not name:
                taken = {w.name for w in self.standin._workspaces.values()}
                name = next((n for n in WORKSPACE_NAMES if n not in taken), f"Workspace {len(taken) + 1}")
            ws = self.standin.create_workspace(name=name)
        return {"team_id": ws.team_id, "install_url": f"{self.app_url}/slack/install?team={ws.team_id}"}

    def _add_user(self, data: dict[str, Any]) -> dict[str, Any]:
        ws = self._ws(data)
        name = str(data.get("name") or "").strip().lower()
        if not _USER_NAME.match(name):
            raise ConsoleError("A user name is 1 to 40 lowercase letters, digits, dots, dashes or underscores.")
        with self.standin._lock:
            if any(u.name == name and ws.team_id in u.teams for u in self.standin._users.values()):
                raise ConsoleError(f"{ws.name} already has someone called {name}.")
            return {"user_id": self.standin.add_user(ws.team_id, name=name)}

    def _to_slack_text(self, ws: Workspace, text: str) -> tuple[str, bool]:
        """Typed text → Slack's wire text: escaped, with ``@name`` turned into ``<@U…>``."""
        slack = _escape(text)
        mentioned = False
        if ws.bot_user_id:
            pattern = re.compile(r"(?<![\w@])@(?:" + re.escape(self.bot_name) + r"|" + re.escape(ws.bot_user_id) + r")\b",
                                 re.IGNORECASE)
            slack, count = pattern.subn(f"<@{ws.bot_user_id}>", slack)
            mentioned = count > 0
        with self.standin._lock:
            names = {u.name: u.user_id for u in self.standin._users.values() if ws.team_id in u.teams and not u.is_bot}

        def person(match: re.Match[str]) -> str:
            user_id = names.get(match.group(1).lower())
            return f"<@{user_id}>" if user_id else match.group(0)

        slack = re.sub(r"(?<![\w<@])@([a-z0-9](?:[a-z0-9._-]*[a-z0-9])?)", person, slack, flags=re.IGNORECASE)
        return slack, mentioned

    def _post_as_user(self, ws: Workspace, channel_id: str, user_id: str, text: str, thread_ts: str | None) -> str:
        """Record a message the person typed, as Slack would store it; returns its ts."""
        standin = self.standin
        with standin._lock:
            ts = standin._next_ts()
            standin._messages.setdefault(ws.team_id, []).append({
                "type": "message", "ts": ts, "channel": channel_id, "team": ws.team_id, "text": text,
                "blocks": None, "attachments": None, "thread_ts": thread_ts, "user": user_id, "bot_id": None,
                "app_id": None, "edited": None, "history": [], "reactions": [], "deleted": False, "params": {},
            })
        return ts

    def _send(self, data: dict[str, Any]) -> dict[str, Any]:
        """A line typed in the composer: a slash command, or a message (with a mention: app_mention)."""
        ws = self._ws(data)
        user_id = self._member(ws, data)
        channel = self._channel(ws, data)
        text = str(data.get("text") or "").strip()
        if not text:
            raise ConsoleError("Type a message first.")
        if text.startswith("/"):
            command, _, rest = text.partition(" ")
            known = {c["command"] for c in self.commands}
            if command not in known:
                raise ConsoleError(f"{command} is not a command of this app (it has {', '.join(sorted(known)) or 'none'}).")
            self._installed(ws)
            response = self.standin.send_slash_command(ws, command, rest.strip(), user=user_id, channel=channel["id"])
            answer = self._answer(response)
            if response.status == 200 and response.body.strip():
                try:
                    body = json.loads(response.body)
                except ValueError:
                    body = {"text": response.body.decode("utf-8", "replace")}
                if isinstance(body, dict) and (body.get("text") or body.get("blocks")):
                    with self.standin._lock:
                        self._acks.setdefault(ws.team_id, []).append({
                            "at": time.time(), "user": user_id, "channel": channel["id"], "body": body,
                            "in_channel": body.get("response_type") == "in_channel",
                        })
            return {"sent": "slash_command", **answer}
        slack_text, mentioned = self._to_slack_text(ws, text)
        thread_ts = str(data["thread_ts"]) if data.get("thread_ts") else None
        ts = self._post_as_user(ws, channel["id"], user_id, slack_text, thread_ts)
        if not mentioned:
            return {"sent": "message", "ts": ts, "note": f"Posted. The app only hears messages that mention @{self.bot_name}."}
        if not ws.installed:
            return {"sent": "message", "ts": ts, "note": f"Posted, but the app is not installed in {ws.name}."}
        event = {"type": "app_mention", "user": user_id, "text": slack_text, "ts": ts, "channel": channel["id"],
                 "event_ts": ts, "team": ws.team_id}
        if thread_ts:
            event["thread_ts"] = thread_ts
        return {"sent": "app_mention", "ts": ts, **self._answer(self.standin.send_event(ws, event))}

    def _action(self, data: dict[str, Any]) -> dict[str, Any]:
        """A click on a button / choice in a select or overflow menu: a signed block_actions request."""
        ws = self._ws(data)
        user_id = self._member(ws, data)
        self._installed(ws)
        action = data.get("action")
        if not isinstance(action, dict) or not action.get("action_id"):
            raise ConsoleError("An action needs an action_id.")
        allowed = ("type", "action_id", "block_id", "value", "text", "selected_option", "selected_options",
                   "selected_user", "selected_conversation", "selected_channel", "selected_date", "selected_time", "url")
        action = {k: copy.deepcopy(v) for k, v in action.items() if k in allowed}
        action["action_ts"] = f"{time.time():.6f}"
        payload: dict[str, Any] = {"type": "block_actions", "user": {"id": user_id}, "actions": [action]}
        if data.get("view_id"):
            view = self._find_view(ws, str(data["view_id"]))
            shown = {k: copy.deepcopy(v) for k, v in view.items() if k not in ("user_id", "via") and not k.startswith("_")}
            shown["state"] = {"values": data.get("values") or {}}
            payload.update(container={"type": "view", "view_id": view["id"]}, view=shown)
        else:
            channel = self._channel(ws, data)
            message_ts = str(data.get("message_ts") or "")
            payload["channel"] = {"id": channel["id"], "name": channel["name"]}
            if data.get("ephemeral"):
                payload["container"] = {"type": "message", "message_ts": message_ts, "channel_id": channel["id"],
                                        "is_ephemeral": True}
            else:
                message = next((m for m in self.standin.messages(ws.team_id, channel=channel["id"]) if m["ts"] == message_ts), None)
                if message is None:
                    raise ConsoleError("That message is gone.")
                public = {k: message[k] for k in ("type", "text", "user", "bot_id", "app_id", "ts", "blocks", "thread_ts")
                          if message.get(k) is not None}
                payload.update(
                    container={"type": "message", "message_ts": message_ts, "channel_id": channel["id"],
                               "is_ephemeral": False},
                    message=public,
                )
        return self._answer(self.standin.send_interactive(ws, payload))

    def _submit(self, data: dict[str, Any]) -> dict[str, Any]:
        """A modal's submit button: a signed view_submission; the answer decides what the modal does."""
        ws = self._ws(data)
        user_id = self._member(ws, data)
        self._installed(ws)
        view = self._find_view(ws, str(data.get("view_id") or ""))
        values = data.get("values") or {}
        if not isinstance(values, dict):
            raise ConsoleError("values must be an object.")
        submitted = {k: copy.deepcopy(v) for k, v in view.items() if k not in ("user_id", "via") and not k.startswith("_")}
        submitted["state"] = {"values": values}
        response = self.standin.send_interactive(ws, {"type": "view_submission", "user": {"id": user_id}, "view": submitted})
        answer = self._answer(response)
        if response.status != 200:
            return {"result": "failed", **answer}
        try:
            body = json.loads(response.body) if response.body.strip() else {}
        except ValueError:
            body = {}
        action = body.get("response_action") if isinstance(body, dict) else None
        if action == "errors":
            return {"result": "errors", "errors": body.get("errors") or {}, **answer}
        with self.standin._lock:
            if action in ("update", "push") and isinstance(body.get("view"), dict):
                self._overlay_ids += 1
                new_id = view["id"] if action == "update" else f"VCONSOLE{self._overlay_ids:04d}"
                self._view_overlays[new_id] = dict(
                    self._public_view({**body["view"], "id": new_id, "hash": f"console.{self._overlay_ids}",
                                       "root_view_id": view.get("root_view_id") or view["id"]}),
                    user_id=user_id, _pushed=action == "push", _order=time.time(),
                    _base_hash=view.get("hash") if action == "update" else None,
                )
                return {"result": "updated" if action == "update" else "pushed", **answer}
            if action == "clear":
                root = view.get("root_view_id") or view["id"]
                self._closed_views.update(
                    v["id"] for v in self.standin.views(ws.team_id) if (v.get("root_view_id") or v["id"]) == root
                )
            self._closed_views.add(view["id"])
        return {"result": "closed", **answer}

    def _close(self, data: dict[str, Any]) -> dict[str, Any]:
        """Cancel / Escape on a modal: close it; ``view_closed`` when the app asked (notify_on_close)."""
        ws = self._ws(data)
        user_id = self._member(ws, data)
        view = self._find_view(ws, str(data.get("view_id") or ""))
        with self.standin._lock:
            self._closed_views.add(view["id"])
        if view.get("notify_on_close") and ws.installed:
            shown = {k: copy.deepcopy(v) for k, v in view.items() if k not in ("user_id", "via") and not k.startswith("_")}
            payload = {"type": "view_closed", "user": {"id": user_id}, "view": shown, "is_cleared": False}
            return {"result": "closed", **self._answer(self.standin.send_interactive(ws, payload))}
        return {"result": "closed"}

    def _home(self, data: dict[str, Any]) -> dict[str, Any]:
        """Opening the app's Home tab: an ``app_home_opened`` event (the app publishes the view)."""
        ws = self._ws(data)
        user_id = self._member(ws, data)
        self._installed(ws)
        current = next(
            (v for v in reversed(self.standin.views(ws.team_id)) if v["type"] == "home" and v["user_id"] == user_id),
            None,
        )
        event: dict[str, Any] = {"type": "app_home_opened", "user": user_id, "channel": f"D{user_id[1:]}", "tab": "home"}
        if current is not None:
            event["view"] = self._public_view(current)
        return self._answer(self.standin.send_event(ws, event))

    def _shortcut(self, data: dict[str, Any]) -> dict[str, Any]:
        """A global shortcut (shortcuts menu) or a message shortcut (a message's menu)."""
        ws = self._ws(data)
        user_id = self._member(ws, data)
        self._installed(ws)
        callback_id = str(data.get("callback_id") or "")
        shortcut = next((s for s in self.shortcuts if s["callback_id"] == callback_id), None)
        if shortcut is None:
            raise ConsoleError(f"The app has no shortcut {callback_id!r}.")
        payload: dict[str, Any] = {"callback_id": callback_id, "user": {"id": user_id},
                                   "action_ts": f"{time.time():.6f}"}
        if shortcut["type"] == "message":
            channel = self._channel(ws, data)
            message_ts = str(data.get("message_ts") or "")
            message = next((m for m in self.standin.messages(ws.team_id, channel=channel["id"]) if m["ts"] == message_ts), None)
            if message is None:
                raise ConsoleError("Pick a message for a message shortcut.")
            payload.update(
                type="message_action", channel={"id": channel["id"], "name": channel["name"]}, message_ts=message_ts,
                message={k: message[k] for k in ("type", "text", "user", "bot_id", "ts", "thread_ts") if message.get(k)},
            )
        else:
            payload["type"] = "shortcut"
        return self._answer(self.standin.send_interactive(ws, payload))

    def _fast_forward(self, data: dict[str, Any]) -> dict[str, Any]:
        """Expire the workspace's access tokens at the stand-in, as if their 12 hours had passed.

        The app's database still believes they are valid: its next call gets ``token_expired``
        and it refreshes through its single-flight path (one ``oauth.v2.access`` call).
        """
        ws = self._ws(data)
        self._installed(ws)
        if ws.is_enterprise_install:
            count = self.standin.expire_tokens(enterprise_id=ws.enterprise_id)
        else:
            count = self.standin.expire_tokens(team_id=ws.team_id)
        return {"expired": count}

    def _uninstall(self, data: dict[str, Any]) -> dict[str, Any]:
        """Remove the app like an admin would: tokens die at Slack, then ``app_uninstalled`` is sent."""
        ws = self._ws(data)
        self._installed(ws)
        if ws.is_enterprise_install:
            self.standin.uninstall(enterprise_id=ws.enterprise_id)
        else:
            self.standin.uninstall(team_id=ws.team_id)
        return self._answer(self.standin.send_event(ws, {"type": "app_uninstalled"}))
