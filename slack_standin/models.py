"""Records the stand-in keeps and hands to callers (workspaces, recorded calls, app replies)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: Parameters whose values are credentials; reprs and logs never show them in full.
SECRET_PARAMS = frozenset({"token", "refresh_token", "client_secret", "code", "access_token"})


def redact(value: str | None) -> str | None:
    """Keep only the last 4 characters so a log line or repr never leaks a usable secret."""
    if not value:
        return value
    return "..." + value[-4:]


@dataclass
class Enterprise:
    """An Enterprise Grid organization; workspaces may belong to it and org-wide installs target it."""

    enterprise_id: str
    name: str
    domain: str


@dataclass
class Workspace:
    """A Slack workspace (team) living in the stand-in.

    ``bot_user_id`` / ``bot_id`` are ``None`` until the app is installed there (directly or
    through an org-wide install of its enterprise). The object is live: the stand-in updates
    it on install/uninstall, so read it rather than caching its fields.
    """

    team_id: str
    name: str
    domain: str
    installer_user_id: str
    default_channel_id: str
    enterprise_id: str | None = None
    enterprise_name: str | None = None
    bot_user_id: str | None = None
    bot_id: str | None = None
    installed: bool = False
    is_enterprise_install: bool = False


@dataclass
class ApiCall:
    """One Web API (or oauth.v2.access) request as the stand-in saw it, for test assertions.

    ``team_id``/``enterprise_id``/``user_id``/``token_kind`` describe the token's owner
    (``None`` for unknown tokens); for org-wide tokens ``team_id`` is the workspace the
    call acted on when the stand-in could tell (e.g. from the channel).
    """

    method: str
    params: dict[str, Any]
    token: str | None
    team_id: str | None
    enterprise_id: str | None
    user_id: str | None
    token_kind: str | None
    ok: bool
    error: str | None
    at: float
    status: int = 200

    def __repr__(self) -> str:
        shown = {k: (redact(str(v)) if k in SECRET_PARAMS else v) for k, v in self.params.items()}
        return (
            f"ApiCall(method={self.method!r}, ok={self.ok}, error={self.error!r}, status={self.status}, "
            f"team_id={self.team_id!r}, enterprise_id={self.enterprise_id!r}, user_id={self.user_id!r}, "
            f"token_kind={self.token_kind!r}, token={redact(self.token)!r}, params={shown!r})"
        )


class AppResponse(tuple):
    """What the app answered to a request the stand-in sent it.

    Unpacks as ``(status, headers, body)``; ``.payload`` is what was sent (e.g. the event
    envelope, so tests can read the generated ``event_id`` or ``event["ts"]``).
    """

    payload: Any

    def __new__(cls, status: int, headers: dict[str, str], body: bytes, payload: Any = None) -> "AppResponse":
        obj = super().__new__(cls, (status, headers, body))
        obj.payload = payload
        return obj

    @property
    def status(self) -> int:
        return self[0]

    @property
    def headers(self) -> dict[str, str]:
        return self[1]

    @property
    def body(self) -> bytes:
        return self[2]

    def json(self) -> Any:
        """Decode the app's reply body as JSON (e.g. a slash command's immediate response)."""
        return json.loads(self.body.decode("utf-8"))


# ---------------------------------------------------------------------------------------
# Internal state records (not exported).


@dataclass
class _User:
    user_id: str
    name: str
    home_team_id: str
    teams: set[str] = field(default_factory=set)
    is_bot: bool = False
    bot_id: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.user_id,
            "team_id": self.home_team_id,
            "name": self.name,
            "real_name": self.name,
            "deleted": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "profile": {"real_name": self.name, "display_name": self.name, "team": self.home_team_id}
            | ({"bot_id": self.bot_id} if self.bot_id else {}),
        }


@dataclass
class _Install:
    key: tuple[str | None, str | None]  # (enterprise_id, None) for org-wide, (None, team_id) otherwise
    team_id: str | None
    enterprise_id: str | None
    bot_user_id: str
    bot_id: str
    bot_scopes: list[str] = field(default_factory=list)
    installed: bool = True

    @property
    def is_enterprise_install(self) -> bool:
        return self.team_id is None


@dataclass
class _Token:
    value: str
    kind: str  # "bot" | "user" | "refresh" | "app" (app-level, Socket Mode)
    install_key: tuple[str | None, str | None]
    team_id: str | None
    enterprise_id: str | None
    user_id: str
    scope: str
    expires_at: float | None
    refresh_kind: str | None = None  # for refresh tokens: kind of access token it renews
    bot_id: str | None = None
    alive: bool = True
    dead_error: str = "invalid_auth"
    used: bool = False

    @property
    def is_enterprise_install(self) -> bool:
        return self.install_key[1] is None


@dataclass
class _Code:
    code: str
    client_id: str
    install_key: tuple[str | None, str | None]
    team_id: str
    enterprise_id: str | None
    user_id: str
    bot_scopes: list[str]
    user_scopes: list[str]
    redirect_uri: str
    created_at: float
    used: bool = False


@dataclass
class _Trigger:
    trigger_id: str
    team_id: str
    user_id: str | None
    created_at: float


@dataclass
class _RateRule:
    max_calls: int
    per_seconds: float
    retry_after: int


@dataclass
class _Failure:
    error: str
    status: int
