"""Bolt's OAuthFlow with the app's pages, a stricter state cookie and failures that store nothing.

Changes against the stock flow:
- the state cookie is HttpOnly, SameSite=Lax, and Secure with the `__Host-` prefix wherever the app
  is not plain http on a loopback address (stock always sets Secure and no SameSite; see
  `StateCookie`); one cookie per install in flight, so two tabs can install two workspaces at
  once, and a reloaded callback is told apart ("already_used");
- `/slack/install?team=` accepts only a Slack workspace or organization id (anything else is a
  400 page), and it reaches the authorize URL encoded;
- a missing state is told apart from a state opened in another browser;
- any storage failure (not only BoltError) becomes the "storage_error" page with 503, never a 500
  with a traceback, and the transaction leaves nothing half-written;
- a failed code exchange of any kind (Slack error, network error) is "invalid_code";
- install, success and failure pages are the app's own (bolt_app.oauth.pages).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import hmac
import logging
import re
from typing import Iterator, Optional
from urllib.parse import quote, urlsplit

from slack_bolt.error import BoltError
from slack_bolt.oauth import OAuthFlow
from slack_bolt.oauth.callback_options import CallbackOptions, FailureArgs, SuccessArgs
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackClientError
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.state_utils import OAuthStateUtils

from bolt_app import manifest
from bolt_app.oauth import pages
from bolt_app.telemetry import metrics
from bolt_app.settings import is_loopback

logger = logging.getLogger(__name__)

HTML = "text/html; charset=utf-8"

# Bolt's suggested status codes, except a storage failure: 503 tells the browser (and monitoring)
# that the server could not complete it, without pretending the request was bad.
STATUS_BY_REASON = {"storage_error": 503, "missing_state": 400}

# The `team` an install link may pre-select: a workspace (T…) or an organization (E…) id.
TEAM_ID = re.compile(r"[TE][A-Z0-9]{2,31}")
# A BoltRequest context key: the scheme the request arrived with ("https" behind a TLS proxy that
# gunicorn trusts, see FORWARDED_ALLOW_IPS), set by the web layer.
URL_SCHEME = "url_scheme"
HOST_PREFIX = "__Host-"

# Whether the OAuth request being served gets Secure cookies (None: outside a request).
_secure_request: contextvars.ContextVar[Optional[bool]] = contextvars.ContextVar("secure_request", default=None)


def _host_of(request: BoltRequest) -> Optional[str]:
    values = request.headers.get("host") or []
    if not values:
        return None
    try:
        return urlsplit(f"//{values[0]}").hostname
    except ValueError:
        return None


def requested_team(request: BoltRequest) -> tuple[bool, Optional[str]]:
    """(valid, team) for an install link's `team` parameter: absent or empty is valid and None;
    anything but exactly one Slack workspace or organization id is invalid."""
    values = [v for v in request.query.get("team") or [] if v != ""]
    if not values:
        return True, None
    if len(values) == 1 and TEAM_ID.fullmatch(values[0]):
        return True, values[0]
    return False, None


class StateCookie(OAuthStateUtils):
    """One cookie per install in flight (``<cookie_name>-<hash of state>``), so installs started in
    two tabs of one browser do not overwrite each other's state, and finishing or cancelling one
    leaves the others alone. A finished install leaves its cookie marked "used" until it expires,
    so reloading the callback says "already used" instead of "use the same browser".

    Secure cookies carry the ``__Host-`` prefix too (the browser then accepts them only from this
    host, over https, for Path=/, and no sibling subdomain or plain-http page can plant one), and
    only prefixed names are read back. Without Secure, cookies set under the plain
    ``cookie_name`` (before per-state names) are still accepted.

    `secure`: True (production: the app's configured address is https or not a loopback host),
    False (plain http on loopback: local development), None (no address configured: decided per
    request, see `serving`). A request that arrived over https always gets Secure cookies."""

    USED = "used"

    def __init__(self, *, cookie_name: str, expiration_seconds: int, secure: Optional[bool]):
        super().__init__(cookie_name=cookie_name, expiration_seconds=expiration_seconds)
        self.secure = secure

    def secure_for(self, request: BoltRequest) -> bool:
        if self.secure or request.context.get(URL_SCHEME) == "https":
            return True
        # No address configured: a browser that reached us under a name other than a loopback
        # one is not local development (a missing Host counts as not loopback).
        return self.secure is None and not is_loopback(_host_of(request))

    @contextlib.contextmanager
    def serving(self, request: BoltRequest) -> Iterator[None]:
        """The cookies set and read while serving `request` follow its security."""
        token = _secure_request.set(self.secure_for(request))
        try:
            yield
        finally:
            _secure_request.reset(token)

    @property
    def is_secure(self) -> bool:
        current = _secure_request.get()
        return bool(self.secure) if current is None else current

    def _flags(self) -> str:
        return "; Secure" if self.is_secure else ""

    def _prefixed(self, name: str) -> str:
        return HOST_PREFIX + name if self.is_secure else name

    def name_for(self, state: str) -> str:
        return self._prefixed(f"{self.cookie_name}-{hashlib.sha256(state.encode()).hexdigest()[:16]}")

    def _cookies(self, request_headers: dict) -> dict[str, str]:
        headers = request_headers.get("cookie") if request_headers else None
        found: dict[str, str] = {}
        for header in [headers] if isinstance(headers, str) else (headers or []):
            for pair in header.split(";"):
                name, _, value = pair.strip().partition("=")
                found.setdefault(name, value.strip().strip("\"'"))
        return found

    def _set(self, state: str, value: str) -> str:
        return (
            f"{self.name_for(state)}={value}; HttpOnly; SameSite=Lax; Path=/; "
            f"Max-Age={self.expiration_seconds}{self._flags()}"
        )

    def build_set_cookie_for_new_state(self, state: str) -> str:
        return self._set(state, state)

    def build_set_cookie_for_used(self, state: str) -> str:
        return self._set(state, self.USED)

    def build_set_cookie_for_deletion(self, state: Optional[str] = None) -> str:
        name = self.name_for(state) if state else self._prefixed(self.cookie_name)
        return f"{name}=deleted; HttpOnly; SameSite=Lax; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT{self._flags()}"

    def is_valid_browser(self, state: Optional[str], request_headers: dict) -> bool:
        if not state:
            return False
        cookies = self._cookies(request_headers)
        if hmac.compare_digest(cookies.get(self.name_for(state), ""), state):
            return True
        return not self.is_secure and super().is_valid_browser(state, request_headers)

    def was_used(self, state: str, request_headers: dict) -> bool:
        """This browser already finished the install that this state belongs to."""
        return self._cookies(request_headers).get(self.name_for(state)) == self.USED


class AppOAuthFlow(OAuthFlow):
    """The OAuth flow with the app's pages (name and description from the manifest)."""

    def build_install_page_html(self, url: str, request: BoltRequest) -> str:
        return pages.render_install_page(
            app_name=manifest.app_name(),
            app_description=manifest.app_description(),
            authorize_url=url,
            bot_scopes=list(self.settings.scopes or []),
            user_scopes=list(self.settings.user_scopes or []),
            icon_data_url=pages.app_icon_data_url(),
        )

    def _serving(self, request: BoltRequest) -> contextlib.AbstractContextManager:
        utils = self.settings.state_utils
        return utils.serving(request) if isinstance(utils, StateCookie) else contextlib.nullcontext()

    def handle_installation(self, request: BoltRequest) -> BoltResponse:
        valid, _ = requested_team(request)
        if not valid:
            # Slack's ids are plain capitals and digits: anything else is not a link Slack or this
            # app made, and it must not reach the authorize URL (or a Location header).
            logger.info("Install link refused: team is not a Slack id")
            return self._fail(request, "invalid_team", 400)
        with self._serving(request):
            return super().handle_installation(request)

    def build_authorize_url(self, state: str, request: BoltRequest) -> str:
        url = self.settings.authorize_url_generator.generate(state=state)
        _, team = requested_team(request)
        return url if team is None else f"{url}&team={quote(team, safe='')}"

    def handle_callback(self, request: BoltRequest) -> BoltResponse:
        with self._serving(request):
            return self._handle_callback(request)

    def _handle_callback(self, request: BoltRequest) -> BoltResponse:
        has_error = request.query.get("error", [None])[0] is not None
        state = request.query.get("state", [None])[0]
        if not has_error and self.settings.state_validation_enabled and not state:
            return self._fail(request, "missing_state", 400)
        utils = self.settings.state_utils
        if not has_error and state and isinstance(utils, StateCookie) and utils.was_used(state, request.headers):
            # A reload of the success page: say so, rather than "finish in the same browser".
            return self._fail(request, "already_used", 401)
        return super().handle_callback(request)

    def _fail(self, request: BoltRequest, reason: str, status: int) -> BoltResponse:
        return self.failure_handler(
            FailureArgs(
                request=request,
                reason=reason,
                suggested_status_code=status,
                settings=self.settings,
                default=self.default_callback_options,
            )
        )

    def run_installation(self, code: str) -> Optional[Installation]:
        try:
            return super().run_installation(code)
        except (SlackClientError, OSError) as error:
            # The stock flow catches only SlackApiError; a network failure must not become a 500.
            logger.warning("Code exchange with Slack failed: %s", type(error).__name__)
            return None

    def store_installation(self, request: BoltRequest, installation: Installation) -> None:
        try:
            self.settings.installation_store.save(installation)
        except Exception as error:  # any storage failure is reported as such, and nothing is stored
            logger.error(
                "Could not store the installation of enterprise_id=%r team_id=%r: %s",
                installation.enterprise_id,
                installation.team_id,
                type(error).__name__,
            )
            raise BoltError("storage_error") from error


def _success(args: SuccessArgs) -> BoltResponse:
    flow_settings = args.settings
    i = args.installation
    team = i.enterprise_id if i.is_enterprise_install else i.team_id
    open_slack_url = f"slack://app?team={team}&id={i.app_id}" if team and i.app_id else None
    html = pages.render_success_page(
        app_name=manifest.app_name(),
        team_name=i.team_name,
        team_id=i.team_id,
        enterprise_name=i.enterprise_name,
        is_enterprise_install=bool(i.is_enterprise_install),
        app_id=i.app_id,
        open_slack_url=open_slack_url,
        slash_commands=manifest.slash_commands(),
    )
    logger.info("Installed into enterprise_id=%r team_id=%r", i.enterprise_id, i.team_id)
    metrics.installed()
    return BoltResponse(
        status=200,
        body=html,
        headers={"Content-Type": HTML, **_state_cookie_header(args.request, flow_settings.state_utils, used=True)},
    )


def _failure(args: FailureArgs) -> BoltResponse:
    reason = args.reason if isinstance(args.reason, str) else "server_error"
    status = STATUS_BY_REASON.get(reason, args.suggested_status_code)
    # %r: the reason may be the callback's `error` query value, anything a link can carry.
    logger.info("Installation failed: %r (status %s)", reason[:100], status)
    metrics.install_failed(reason)
    html = pages.render_failure_page(app_name=manifest.app_name(), reason=reason, retry_url=args.settings.install_path)
    headers = {"Content-Type": HTML}
    if reason != "already_used":  # keep the "used" mark, so a second reload says the same
        headers.update(_state_cookie_header(args.request, args.settings.state_utils, used=False))
    return BoltResponse(status=status, body=html, headers=headers)


def _state_cookie_header(request: BoltRequest, utils: OAuthStateUtils, *, used: bool) -> dict[str, str]:
    """The callback's cookie: this install's state is marked used (success) or removed (failure)."""
    state = request.query.get("state", [None])[0]
    if not isinstance(utils, StateCookie):
        return {"Set-Cookie": utils.build_set_cookie_for_deletion()}
    if not state:
        return {}
    cookie = utils.build_set_cookie_for_used(state) if used else utils.build_set_cookie_for_deletion(state)
    return {"Set-Cookie": cookie}


CALLBACK_OPTIONS = CallbackOptions(success=_success, failure=_failure)
