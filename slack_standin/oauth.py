"""OAuth v2 with token rotation: consent page, redirect with a code, ``oauth.v2.access``."""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from .core import _ApiError, _Core, _split_scopes
from .http import Response, html_response, redirect_response
from .models import Workspace, _Code, _Install, _Token
from .pages import NEW_WORKSPACE, ConsentForm, render_consent, render_error

#: Query fields of the authorize URL that the consent form carries through as hidden inputs.
_CARRIED_FIELDS = ("client_id", "scope", "user_scope", "state", "redirect_uri")


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


def _with_query(url: str, **params: str | None) -> str:
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{url}{'&' if '?' in url else '?'}{extra}"


class _OAuthFlowError(Exception):
    """An authorize-step problem shown to the human as an HTML page (status 400)."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__(message)
        self.title = title
        self.message = message


class _OAuthMixin(_Core):
    # ------------------------------------------------------------------ browser side

    def _authorize_page(self, query: dict[str, str]) -> Response:
        """GET /oauth/v2/authorize: consent page, or an immediate redirect when ``decision`` is given."""
        try:
            with self._lock:
                self._check_authorize_client(query)
                if query.get("decision"):
                    location = self._decide(
                        query,
                        query["decision"],
                        team=query.get("team"),
                        user=query.get("user"),
                        org_install=_truthy(query.get("org_install", "")),
                    )
                    return redirect_response(location)
                form = ConsentForm(
                    app_id=self.app_id,
                    hidden={k: query[k] for k in _CARRIED_FIELDS if k in query},
                    bot_scopes=_split_scopes(query.get("scope")),
                    user_scopes=_split_scopes(query.get("user_scope")),
                    workspaces=list(self._workspaces.values()),
                    preselected_team=query.get("team") or None,
                )
                return html_response(render_consent(form))
        except _OAuthFlowError as e:
            return html_response(render_error(e.title, e.message), status=400)

    def _authorize_decision(self, form: dict[str, str]) -> Response:
        """POST /oauth/v2/authorize/decision: the consent page's Allow/Cancel."""
        try:
            with self._lock:
                self._check_authorize_client(form)
                team = form.get("team") or None
                if team == NEW_WORKSPACE:
                    team = form.get("new_team") or NEW_WORKSPACE
                location = self._decide(
                    form,
                    form.get("decision", ""),
                    team=team,
                    user=form.get("user") or None,
                    org_install=_truthy(form.get("org_install", "")),
                )
                return redirect_response(location)
        except _OAuthFlowError as e:
            return html_response(render_error(e.title, e.message), status=400)

    def approve(
        self,
        authorize_url: str,
        team_id: str | None = None,
        user_id: str | None = None,
        org_install: bool = False,
    ) -> str:
        """Click "Allow" without a browser; returns the redirect Location (``...?code=...&state=...``).

        ``team_id`` defaults to the URL's ``team`` param, else a new workspace is created
        (an unknown ``team_id`` is created too). ``user_id`` defaults to the installer.
        """
        query = dict(parse_qsl(urlsplit(authorize_url).query, keep_blank_values=True))
        with self._lock:
            try:
                self._check_authorize_client(query)
                return self._decide(
                    query, "allow", team=team_id or query.get("team") or None, user=user_id, org_install=org_install
                )
            except _OAuthFlowError as e:
                raise ValueError(f"{e.title}: {e.message}") from e

    def cancel(self, authorize_url: str) -> str:
        """Click "Cancel" without a browser; returns ``redirect_uri?error=access_denied&state=...``."""
        query = dict(parse_qsl(urlsplit(authorize_url).query, keep_blank_values=True))
        with self._lock:
            try:
                self._check_authorize_client(query)
                return self._decide(query, "cancel", team=None, user=None, org_install=False)
            except _OAuthFlowError as e:
                raise ValueError(f"{e.title}: {e.message}") from e

    def _check_authorize_client(self, fields: dict[str, str]) -> None:
        client_id = fields.get("client_id")
        if not client_id:
            raise _OAuthFlowError("Missing client_id", "The authorize URL has no client_id parameter.")
        if client_id != self.client_id:
            raise _OAuthFlowError("Unknown app", f"No app with client_id {client_id!r} is registered here.")

    def _decide(
        self,
        fields: dict[str, str],
        decision: str,
        *,
        team: str | None,
        user: str | None,
        org_install: bool,
    ) -> str:
        """Shared by the page, the direct-GET shortcut and ``approve``: returns the redirect Location."""
        redirect_uri = fields.get("redirect_uri") or self.redirect_uri
        if not redirect_uri:
            raise _OAuthFlowError(
                "No redirect URL",
                "The authorize URL has no redirect_uri and the stand-in's redirect_uri is not set.",
            )
        state = fields.get("state") or None
        if decision == "cancel":
            return _with_query(redirect_uri, error="access_denied", state=state)
        if decision != "allow":
            raise _OAuthFlowError("Bad decision", f"Expected allow or cancel, got {decision!r}.")

        ws = self._workspace_for_install(team)
        if org_install and ws.enterprise_id is None:
            raise _OAuthFlowError(
                "Not an organization",
                f"Workspace {ws.team_id} is not part of an Enterprise Grid org; it cannot be installed org-wide.",
            )
        user_id = self._ensure_user(ws.team_id, user or ws.installer_user_id)
        bot_scopes = _split_scopes(fields.get("scope"))
        user_scopes = _split_scopes(fields.get("user_scope"))
        inst = self._install(ws, bot_scopes, org_wide=org_install)
        code = f"{int(time.time())}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"
        self._codes[code] = _Code(
            code=code,
            client_id=self.client_id,
            install_key=inst.key,
            team_id=ws.team_id,
            enterprise_id=ws.enterprise_id,
            user_id=user_id,
            bot_scopes=bot_scopes,
            user_scopes=user_scopes,
            redirect_uri=redirect_uri,
            created_at=time.time(),
        )
        return _with_query(redirect_uri, code=code, state=state)

    def _workspace_for_install(self, team: str | None) -> Workspace:
        if team is None or team == NEW_WORKSPACE:
            return self.create_workspace()
        return self._workspaces.get(team) or self.create_workspace(team_id=team)

    # ------------------------------------------------------------------ oauth.v2.access

    def _api_oauth_v2_access(self, ctx: Any) -> dict[str, Any]:
        """Exchange a code, or rotate a refresh token; client credentials via form or Basic auth."""
        params = ctx.params
        client_id = params.get("client_id") or (ctx.basic[0] if ctx.basic else None)
        client_secret = params.get("client_secret") or (ctx.basic[1] if ctx.basic else None)
        if client_id != self.client_id:
            raise _ApiError("invalid_client_id")
        if client_secret != self.client_secret:
            raise _ApiError("bad_client_secret")
        grant_type = params.get("grant_type")
        if grant_type == "refresh_token":
            return self._refresh(ctx, params.get("refresh_token"))
        if grant_type not in (None, "", "authorization_code"):
            raise _ApiError("unsupported_grant_type")
        code_value = params.get("code")
        if not code_value:
            raise _ApiError("invalid_arguments")
        code = self._codes.get(str(code_value))
        if code is None or code.used or ctx.now - code.created_at > self.code_lifetime_seconds:
            raise _ApiError("invalid_code")
        code.used = True  # single use, even if the rest of the exchange fails
        ctx.team_id, ctx.enterprise_id = code.team_id, code.enterprise_id
        if params.get("redirect_uri") and params["redirect_uri"] != code.redirect_uri:
            raise _ApiError("bad_redirect_uri")
        inst = self._installs[code.install_key]
        if not inst.installed:
            raise _ApiError("invalid_code")
        return self._install_response(inst, code, ctx.now)

    def _team_and_enterprise(self, inst: _Install, team_id: str | None) -> dict[str, Any]:
        team = None
        if not inst.is_enterprise_install and team_id is not None:
            team = {"id": team_id, "name": self._workspaces[team_id].name}
        org = self._enterprises.get(inst.enterprise_id) if inst.enterprise_id else None
        return {
            "team": team,
            "enterprise": {"id": org.enterprise_id, "name": org.name} if org else None,
            "is_enterprise_install": inst.is_enterprise_install,
        }

    def _install_response(self, inst: _Install, code: _Code, now: float) -> dict[str, Any]:
        authed_user: dict[str, Any] = {"id": code.user_id}
        if code.user_scopes:
            user_scope = ",".join(code.user_scopes)
            access, refresh = self._issue_tokens("user", inst, code.user_id, user_scope, now)
            authed_user.update(
                scope=user_scope,
                access_token=access.value,
                token_type="user",
                refresh_token=refresh.value,
                expires_in=self.token_lifetime_seconds,
            )
        data: dict[str, Any] = {"app_id": self.app_id, "authed_user": authed_user}
        if code.bot_scopes or not code.user_scopes:
            bot_scope = ",".join(inst.bot_scopes)
            access, refresh = self._issue_tokens("bot", inst, inst.bot_user_id, bot_scope, now)
            data.update(
                scope=bot_scope,
                token_type="bot",
                access_token=access.value,
                bot_user_id=inst.bot_user_id,
                refresh_token=refresh.value,
                expires_in=self.token_lifetime_seconds,
            )
        data.update(self._team_and_enterprise(inst, code.team_id))
        return data

    def _refresh(self, ctx: Any, value: Any) -> dict[str, Any]:
        rec: _Token | None = self._tokens.get(str(value)) if value else None
        if rec is None or rec.kind != "refresh" or rec.used or not rec.alive:
            raise _ApiError("invalid_refresh_token")
        rec.used = True  # strictly single-use; the old access token lives until its own expiry
        ctx.team_id, ctx.enterprise_id = rec.team_id, rec.enterprise_id
        inst = self._installs[rec.install_key]
        kind = rec.refresh_kind or "bot"
        access, refresh = self._issue_tokens(kind, inst, rec.user_id, rec.scope, ctx.now)
        data: dict[str, Any] = {
            "app_id": self.app_id,
            "scope": rec.scope,
            "token_type": kind,
            "access_token": access.value,
            "refresh_token": refresh.value,
            "expires_in": self.token_lifetime_seconds,
        }
        if kind == "bot":
            data["bot_user_id"] = rec.user_id
        else:
            data["user_id"] = rec.user_id
            data["authed_user"] = {
                "id": rec.user_id,
                "scope": rec.scope,
                "access_token": access.value,
                "token_type": "user",
                "refresh_token": refresh.value,
                "expires_in": self.token_lifetime_seconds,
            }
        data.update(self._team_and_enterprise(inst, rec.team_id))
        return data
