"""Shared state of the stand-in plus the test-facing knobs (workspaces, tokens, fault injection).

Everything mutable lives on one object guarded by one re-entrant lock: the HTTP server
handles requests on many threads while tests poke at the same state from theirs.
"""

from __future__ import annotations

import copy
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Container
from typing import Any

from .models import (
    ApiCall,
    Enterprise,
    Workspace,
    _Code,
    _Failure,
    _Install,
    _RateRule,
    _Token,
    _Trigger,
    _User,
)

BOT_TOKEN_PREFIX = "xoxe.xoxb-1-"
USER_TOKEN_PREFIX = "xoxe.xoxp-1-"
REFRESH_TOKEN_PREFIX = "xoxe-1-"


class _ApiError(Exception):
    """Raised inside a Web API handler to answer ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "workspace"


def _split_scopes(value: str | None) -> list[str]:
    if not value:
        return []
    return [s for s in (part.strip() for part in re.split(r"[,\s]+", value)) if s]


def _merge_scopes(old: list[str], new: list[str]) -> list[str]:
    return old + [s for s in new if s not in old]


class _Core:
    """State and admin helpers; the HTTP-facing mixins build on this."""

    def __init__(
        self,
        *,
        client_id: str = "111.222",
        client_secret: str = "standin-client-secret",
        signing_secret: str = "standin-signing-secret",
        app_id: str = "A0APP",
        token_lifetime_seconds: int = 43200,
        latency_seconds: float = 0.0,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.signing_secret = signing_secret
        self.app_id = app_id
        self.token_lifetime_seconds = token_lifetime_seconds
        #: Seconds to sleep before answering each Web API call (simulates a slow Slack).
        self.latency_seconds = latency_seconds
        #: Where the app receives events/commands/interactions (used by ``post_to_app``).
        self.request_url: str | None = None
        #: The app's registered redirect URL, used when the authorize URL has none.
        self.redirect_uri: str | None = None
        #: Legacy verification token put into payloads (Bolt ignores it; Slack still sends it).
        self.verification_token = "standin-verification-token"
        #: OAuth codes die this many seconds after being issued (Slack: 10 minutes).
        self.code_lifetime_seconds = 600.0
        #: trigger_ids die this many seconds after the interaction (Slack: 3 seconds).
        self.trigger_lifetime_seconds = 3.0
        #: False: an unknown channel id is created on first use in the token's workspace.
        #: True: unknown channels answer ``channel_not_found``.
        self.strict_channels = False
        #: Timeout when posting to the app's request URL.
        self.app_timeout_seconds = 10.0
        #: Seconds a post to a response_url waits before it is answered (a slow or stuck Slack).
        self.response_url_delay_seconds = 0.0

        self._lock = threading.RLock()
        self._counters: dict[str, int] = {}
        self._enterprises: dict[str, Enterprise] = {}
        self._workspaces: dict[str, Workspace] = {}
        self._users: dict[str, _User] = {}
        self._channels: dict[str, dict[str, Any]] = {}
        self._installs: dict[tuple[str | None, str | None], _Install] = {}
        self._bot_ids: set[str] = set()
        self._tokens: dict[str, _Token] = {}
        self._codes: dict[str, _Code] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._calls: list[ApiCall] = []
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._ephemerals: dict[str, list[dict[str, Any]]] = {}
        self._views: dict[str, dict[str, Any]] = {}
        self._response_urls: dict[str, dict[str, Any]] = {}
        self._responses: list[dict[str, Any]] = []
        self._sent: list[dict[str, Any]] = []
        self._bot_channels: dict[str, set[str]] = {}
        self._rate_rules: dict[str, _RateRule] = {}
        self._rate_windows: dict[tuple[str, str], deque[float]] = {}
        self._failures: dict[str, deque[_Failure]] = {}
        self._last_ts_us = 0

    # ------------------------------------------------------------------ id helpers

    def _new_id(self, prefix: str, taken: Container[str] = (), width: int = 4) -> str:
        while True:
            n = self._counters.get(prefix, 0) + 1
            self._counters[prefix] = n
            candidate = f"{prefix}{n:0{width}d}"
            if candidate not in taken:
                return candidate

    def _next_ts(self) -> str:
        """Unique, strictly increasing message timestamp like ``1700000000.000100``."""
        now_us = int(time.time() * 1_000_000)
        self._last_ts_us = max(now_us, self._last_ts_us + 1)
        return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    def _new_trigger(self, team_id: str, user_id: str | None) -> str:
        n = self._counters.get("trigger", 0) + 1
        self._counters["trigger"] = n
        trigger_id = f"{int(time.time())}.{n}.{secrets.token_hex(16)}"
        self._triggers[trigger_id] = _Trigger(trigger_id, team_id, user_id, time.time())
        return trigger_id

    # ------------------------------------------------------------------ directory

    def create_enterprise(self, enterprise_id: str | None = None, name: str | None = None) -> Enterprise:
        """Create an Enterprise Grid org; pass its id to ``create_workspace`` to add workspaces."""
        with self._lock:
            eid = enterprise_id or self._new_id("E", self._enterprises)
            if eid in self._enterprises:
                raise ValueError(f"enterprise {eid} already exists")
            org_name = name or f"Org {eid}"
            org = Enterprise(enterprise_id=eid, name=org_name, domain=_slug(org_name))
            self._enterprises[eid] = org
            return org

    def create_workspace(
        self,
        team_id: str | None = None,
        name: str | None = None,
        enterprise_id: str | None = None,
        enterprise_name: str | None = None,
    ) -> Workspace:
        """Create a workspace with an installer user and a ``#general`` channel.

        An unknown ``enterprise_id`` creates that org on the fly. If the org already has
        the app installed org-wide, the new workspace is covered by that install.
        """
        with self._lock:
            tid = team_id or self._new_id("T", self._workspaces)
            if tid in self._workspaces:
                raise ValueError(f"workspace {tid} already exists")
            org: Enterprise | None = None
            if enterprise_id is not None:
                org = self._enterprises.get(enterprise_id) or self.create_enterprise(enterprise_id, enterprise_name)
            ws_name = name or f"Workspace {tid}"
            installer = self._new_id("U", self._users)
            channel_id = self._new_id("C", self._channels)
            ws = Workspace(
                team_id=tid,
                name=ws_name,
                domain=_slug(ws_name),
                installer_user_id=installer,
                default_channel_id=channel_id,
                enterprise_id=org.enterprise_id if org else None,
                enterprise_name=org.name if org else None,
            )
            self._workspaces[tid] = ws
            self._users[installer] = _User(installer, f"installer-{tid.lower()}", tid, {tid})
            self._channels[channel_id] = {"id": channel_id, "name": "general", "team_id": tid, "created": int(time.time())}
            if org is not None:
                inst = self._installs.get((org.enterprise_id, None))
                if inst is not None and inst.installed:
                    self._apply_install(inst, ws)
            return ws

    def add_user(self, team_id: str, user_id: str | None = None, name: str | None = None) -> str:
        """Make a (possibly new) user a member of a workspace; returns the user id."""
        with self._lock:
            self._workspace(team_id)
            return self._ensure_user(team_id, user_id, name)

    def create_channel(self, team_id: str, name: str | None = None, channel_id: str | None = None) -> str:
        """Create a public channel in a workspace; returns its id."""
        with self._lock:
            self._workspace(team_id)
            if channel_id in self._channels:
                raise ValueError(f"channel {channel_id} already exists")
            return self._create_channel(team_id, name, channel_id)["id"]

    @property
    def workspaces(self) -> list[Workspace]:
        """All workspaces, in creation order."""
        with self._lock:
            return list(self._workspaces.values())

    def workspace(self, team_id: str) -> Workspace:
        """Look up a workspace by team id (KeyError if unknown)."""
        with self._lock:
            return self._workspaces[team_id]

    def _workspace(self, team_id: str) -> Workspace:
        ws = self._workspaces.get(team_id)
        if ws is None:
            raise ValueError(f"unknown workspace {team_id!r}")
        return ws

    def _resolve_ws(self, ws_or_team_id: Workspace | str) -> Workspace:
        team_id = ws_or_team_id.team_id if isinstance(ws_or_team_id, Workspace) else ws_or_team_id
        return self._workspace(team_id)

    def _ensure_user(self, team_id: str, user_id: str | None, name: str | None = None) -> str:
        uid = user_id or self._new_id("U", self._users)
        user = self._users.get(uid)
        if user is None:
            user = _User(uid, name or f"user-{uid.lower()}", team_id, set())
            self._users[uid] = user
        user.teams.add(team_id)
        return uid

    def _create_channel(self, team_id: str, name: str | None = None, channel_id: str | None = None) -> dict[str, Any]:
        cid = channel_id or self._new_id("C", self._channels)
        channel = {"id": cid, "name": name or f"channel-{cid.lower()}", "team_id": team_id, "created": int(time.time())}
        self._channels[cid] = channel
        return channel

    # ------------------------------------------------------------------ installs & tokens

    def _install(self, ws: Workspace, bot_scopes: list[str], org_wide: bool) -> _Install:
        """Install (or re-install) the app; the bot user survives re-installs like on Slack."""
        key = (ws.enterprise_id, None) if org_wide else (None, ws.team_id)
        inst = self._installs.get(key)
        if inst is None:
            bot_user_id = self._new_id("U0BOT", self._users)
            bot_id = self._new_id("B", self._bot_ids)
            self._bot_ids.add(bot_id)
            self._users[bot_user_id] = _User(bot_user_id, "standin-bot", ws.team_id, set(), True, bot_id)
            inst = _Install(
                key=key,
                team_id=None if org_wide else ws.team_id,
                enterprise_id=ws.enterprise_id,
                bot_user_id=bot_user_id,
                bot_id=bot_id,
            )
            self._installs[key] = inst
        inst.installed = True
        inst.bot_scopes = _merge_scopes(inst.bot_scopes, bot_scopes)
        targets = (
            [w for w in self._workspaces.values() if w.enterprise_id == ws.enterprise_id] if org_wide else [ws]
        )
        for target in targets:
            self._apply_install(inst, target)
        return inst

    def _apply_install(self, inst: _Install, ws: Workspace) -> None:
        ws.bot_user_id = inst.bot_user_id
        ws.bot_id = inst.bot_id
        ws.installed = True
        ws.is_enterprise_install = inst.is_enterprise_install
        self._users[inst.bot_user_id].teams.add(ws.team_id)

    def _issue_tokens(
        self, kind: str, inst: _Install, user_id: str, scope: str, now: float
    ) -> tuple[_Token, _Token]:
        """Mint an access token (bot or user) and its single-use refresh token."""
        prefix = BOT_TOKEN_PREFIX if kind == "bot" else USER_TOKEN_PREFIX
        common = dict(
            install_key=inst.key,
            team_id=inst.team_id,
            enterprise_id=inst.enterprise_id,
            user_id=user_id,
            scope=scope,
            bot_id=inst.bot_id if kind == "bot" else None,
        )
        access = _Token(
            value=prefix + secrets.token_hex(24),
            kind=kind,
            expires_at=now + self.token_lifetime_seconds,
            **common,  # type: ignore[arg-type]
        )
        refresh = _Token(
            value=REFRESH_TOKEN_PREFIX + secrets.token_hex(32),
            kind="refresh",
            expires_at=None,
            refresh_kind=kind,
            **common,  # type: ignore[arg-type]
        )
        self._tokens[access.value] = access
        self._tokens[refresh.value] = refresh
        return access, refresh

    def uninstall(self, team_id: str | None = None, enterprise_id: str | None = None) -> None:
        """Uninstall the app from a workspace (or org-wide install): all its tokens die.

        Afterwards access tokens answer ``account_inactive`` and refresh tokens
        ``invalid_refresh_token``, like a real uninstall.
        """
        with self._lock:
            key = (None, team_id) if team_id is not None else (enterprise_id, None)
            self._uninstall_key(key)

    def _uninstall_key(self, key: tuple[str | None, str | None]) -> None:
        inst = self._installs.get(key)
        if inst is None or not inst.installed:
            raise ValueError(f"app is not installed for {key}")
        inst.installed = False
        for rec in self._tokens.values():
            if rec.install_key == key:
                rec.alive = False
                rec.dead_error = "account_inactive"
        for ws in self._workspaces.values():
            covered = ws.team_id == key[1] if key[1] is not None else ws.enterprise_id == key[0]
            if covered and ws.bot_user_id == inst.bot_user_id:
                ws.installed = False
                ws.is_enterprise_install = False

    def expire_tokens(self, team_id: str | None = None, enterprise_id: str | None = None) -> int:
        """Fast-forward time for access tokens: matching ones are expired from now on.

        ``team_id`` matches tokens issued for that workspace; ``enterprise_id`` matches
        every token in that org (workspace-level and org-wide). No argument: all tokens.
        Returns how many tokens were expired.
        """
        with self._lock:
            now = time.time()
            count = 0
            for rec in self._tokens.values():
                if rec.kind in ("refresh", "app"):  # these never expire
                    continue
                if team_id is not None and rec.team_id != team_id:
                    continue
                if enterprise_id is not None and rec.enterprise_id != enterprise_id:
                    continue
                rec.expires_at = min(rec.expires_at or now, now - 0.001)
                count += 1
            return count

    def revoke_refresh_tokens(self, team_id: str) -> int:
        """Invalidate the current refresh tokens of a workspace (or, given an ``E...`` id, of an org-wide install).

        Refreshing with them then answers ``invalid_refresh_token``. Returns the count.
        """
        with self._lock:
            count = 0
            for rec in self._tokens.values():
                if rec.kind != "refresh" or not rec.alive or rec.used:
                    continue
                if rec.team_id == team_id or (rec.team_id is None and rec.enterprise_id == team_id):
                    rec.alive = False
                    count += 1
            return count

    def token_info(self, token: str) -> dict[str, Any] | None:
        """Describe a token the stand-in issued (kind, owner, expiry, liveness), or None."""
        with self._lock:
            rec = self._tokens.get(token)
            if rec is None:
                return None
            return {
                "kind": rec.kind,
                "team_id": rec.team_id,
                "enterprise_id": rec.enterprise_id,
                "user_id": rec.user_id,
                "scope": rec.scope,
                "expires_at": rec.expires_at,
                "alive": rec.alive,
                "used": rec.used,
                "is_enterprise_install": rec.is_enterprise_install,
            }

    # ------------------------------------------------------------------ fault injection

    def set_rate_limit(self, method: str, max_calls: int, per_seconds: float, retry_after: int = 1) -> None:
        """Allow ``max_calls`` of ``method`` per workspace in any ``per_seconds`` window.

        Calls over the limit get HTTP 429, a ``Retry-After`` header and ``ratelimited``.
        """
        with self._lock:
            self._rate_rules[method] = _RateRule(max_calls, per_seconds, retry_after)
            for key in [k for k in self._rate_windows if k[0] == method]:
                del self._rate_windows[key]

    def clear_rate_limits(self) -> None:
        """Remove every rate limit set with ``set_rate_limit``."""
        with self._lock:
            self._rate_rules.clear()
            self._rate_windows.clear()

    def set_bot_channels(self, team_id: str, channel_ids: list[str] | set[str] | None) -> None:
        """Restrict which channels the bot is a member of (``None``: all of them, the default).

        Bot posts/updates elsewhere answer ``not_in_channel``.
        """
        with self._lock:
            if channel_ids is None:
                self._bot_channels.pop(team_id, None)
            else:
                self._bot_channels[team_id] = set(channel_ids)

    def set_failure(self, method: str, error: str = "internal_error", status: int = 200, count: int = 1) -> None:
        """Make the next ``count`` calls of ``method`` fail with ``error`` and HTTP ``status``.

        ``method="*"`` applies to whatever method is called next. Injected failures are
        answered before authentication and rate limiting, like an upstream outage.
        """
        with self._lock:
            queue = self._failures.setdefault(method, deque())
            queue.extend(_Failure(error, status) for _ in range(count))

    def clear_failures(self) -> None:
        """Drop pending injected failures."""
        with self._lock:
            self._failures.clear()

    def _take_failure(self, method: str) -> _Failure | None:
        for key in (method, "*"):
            queue = self._failures.get(key)
            if queue:
                return queue.popleft()
        return None

    def _rate_limited(self, method: str, bucket: str, now: float) -> int | None:
        rule = self._rate_rules.get(method)
        if rule is None:
            return None
        window = self._rate_windows.setdefault((method, bucket), deque())
        while window and window[0] <= now - rule.per_seconds:
            window.popleft()
        if len(window) >= rule.max_calls:
            return rule.retry_after
        window.append(now)
        return None

    # ------------------------------------------------------------------ recorded traffic

    @property
    def calls(self) -> list[ApiCall]:
        """Every Web API call received so far, oldest first (a snapshot copy)."""
        with self._lock:
            return list(self._calls)

    def calls_for(self, method: str) -> list[ApiCall]:
        """Recorded calls of one method, e.g. ``calls_for("chat.postMessage")``."""
        with self._lock:
            return [c for c in self._calls if c.method == method]

    def clear_calls(self) -> None:
        """Forget recorded calls (messages, views and tokens are kept)."""
        with self._lock:
            self._calls.clear()

    def messages(self, team_id: str, channel: str | None = None, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Messages posted in a workspace (optionally one channel), oldest first.

        Each has ``ts, channel, text, blocks, attachments, thread_ts, user, bot_id, edited,
        history`` (previous versions, oldest first), ``reactions`` and ``deleted``.
        """
        with self._lock:
            found = [
                m
                for m in self._messages.get(team_id, [])
                if (channel is None or m["channel"] == channel) and (include_deleted or not m["deleted"])
            ]
            return copy.deepcopy(found)

    def ephemerals(self, team_id: str) -> list[dict[str, Any]]:
        """Ephemeral messages sent in a workspace, oldest first."""
        with self._lock:
            return copy.deepcopy(self._ephemerals.get(team_id, []))

    def views(self, team_id: str) -> list[dict[str, Any]]:
        """Modals and Home tabs the app opened/pushed/published in a workspace (current state).

        Each is the Slack view object plus ``user_id`` (whom it was shown to) and ``via``
        (``views.open``, ``views.push``, ``views.publish``; last ``views.update`` wins).
        """
        with self._lock:
            found = [
                dict(v["view"], user_id=v["user_id"], via=v["via"])
                for v in self._views.values()
                if v["team_id"] == team_id
            ]
            return copy.deepcopy(found)

    def responses(self, team_id: str | None = None) -> list[dict[str, Any]]:
        """Bodies the app posted to ``response_url``s (``team_id, channel_id, user_id, body``)."""
        with self._lock:
            return copy.deepcopy([r for r in self._responses if team_id is None or r["team_id"] == team_id])

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Requests the stand-in sent to the app (``kind, payload, status``), oldest first."""
        with self._lock:
            return copy.deepcopy(self._sent)
