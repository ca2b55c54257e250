"""The app factory: builds a Bolt `App` (OAuth, stores, authorize, listeners) from settings.

Tests build as many independent apps as they like; nothing here is global.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Optional

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.logger import get_bolt_app_logger
from slack_bolt.oauth.oauth_settings import OAuthSettings
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from bolt_app import background, database, lifecycle
from bolt_app.features import Features, build_features
from bolt_app.listeners import register_listeners
from bolt_app.oauth.flow import CALLBACK_OPTIONS, AppOAuthFlow, StateCookie
from bolt_app.settings import Settings
from bolt_app.storage import crypto
from bolt_app.storage.installation_store import InstallationStore
from bolt_app.storage.state_store import OAuthStateStore
from bolt_app.storage.tables import workspace_key
from bolt_app.tokens.authorize import AuthorizeCache, StoreAuthorize
from bolt_app.tokens.client import TokenRefreshingWebClient, build_web_client
from bolt_app.tokens.rotation import InstallationNeedsReinstall, TokenService, TokensTemporarilyUnavailable

if TYPE_CHECKING:
    from bolt_app.lazy_processes import LazyProcessPool

logger = logging.getLogger(__name__)

STATE_COOKIE_NAME = "slack-app-oauth-state"
# Bolt middleware that runs on every request for features no listener here uses: AI-assistant
# helpers (say_stream, set_status, …) and custom-function (workflow step) tokens. A fork that adds
# Assistant or custom-function listeners turns the matching one back on.
UNUSED_BOLT_MIDDLEWARE_OFF = {"attaching_conversation_kwargs_enabled": False, "attaching_function_token_enabled": False}


class SlackApp(App):
    """Bolt's App plus what the rest of the app needs to reach: settings, engine, token service."""

    settings: Settings
    engine: Engine
    tokens: Optional[TokenService] = None
    authorize_cache: Optional[AuthorizeCache] = None
    features: Features  # feature services the listeners use (polls, idempotency)
    # This worker's lazy processes (bolt_app/lazy_processes.attach), None when lazy work runs on threads.
    lazy_pool: Optional["LazyProcessPool"] = None
    # The task queue `lazy=` work goes to (bolt_app/background.attach), None when it runs here.
    task_queue: Optional[background.TaskQueue] = None

    def _init_context(self, req: BoltRequest) -> None:
        # Bolt's version builds a fresh WebClient per request; this copies the configured one
        # (same settings, new token/team) and the copy refreshes and retries once when Slack
        # says `token_expired`.
        req.context["logger"] = get_bolt_app_logger(app_name=self.name, base_logger=self._base_logger)
        req.context["token"] = self._token
        req.context["client"] = TokenRefreshingWebClient.like(self._client, token=self._token, team_id=req.context.team_id)
        req.context["listener_runner"] = self.listener_runner


# A few connections beyond the pool for a burst; each process of a worker (the worker and each
# lazy process) holds at most pool_size + POOL_OVERFLOW, so a deployment's connection count is
# known in advance (see README "Running in production").
POOL_OVERFLOW = 2


def pool_size(settings: Settings) -> int:
    """One connection per request thread, plus the authorize cache's and the token refresher's
    background threads. Lazy work holds a connection only for its short transactions."""
    return settings.web_threads + 2


def create_app(settings: Settings, *, engine: Engine | None = None) -> SlackApp:
    """Build the Bolt app. The schema must be current (see `database.ensure_schema`)."""
    engine = engine or database.create_engine(
        settings.database_url, pool_size=pool_size(settings), max_overflow=POOL_OVERFLOW
    )
    if settings.multi_workspace or settings.token_encryption_keys:
        # Token columns are encrypted with the keys from settings (or the SQLite key file).
        keyring = crypto.keyring_from_settings(settings)
        crypto.bind(engine, keyring)
        if crypto.default_keyring() is None:
            crypto.configure(keyring)
    if settings.query_stats_dir:
        from bolt_app.diagnostics import count_queries

        count_queries(engine, settings.query_stats_dir)
    client = build_web_client(settings.api_url)
    tokens: TokenService | None = None
    cache: AuthorizeCache | None = None

    if settings.multi_workspace:
        assert settings.client_id and settings.client_secret
        installation_store = InstallationStore(client_id=settings.client_id, engine=engine)
        state_store = OAuthStateStore(expiration_seconds=settings.state_expiration_seconds, engine=engine)
        cache = AuthorizeCache()
        tokens = TokenService(
            engine=engine,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            client=build_web_client(settings.api_url),
            refresh_before_seconds=settings.token_refresh_minutes * 60,
            on_rotated=cache.invalidate_workspace,
        )
        installation_store.change_listeners.append(cache.invalidate_workspace)
        oauth_settings = OAuthSettings(
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            scopes=list(settings.scopes),
            user_scopes=list(settings.user_scopes),
            redirect_uri=settings.redirect_uri,
            install_path="/slack/install",
            redirect_uri_path="/slack/oauth_redirect",
            install_page_rendering_enabled=settings.install_page_enabled,
            authorization_url=settings.authorize_url,
            installation_store=installation_store,
            state_store=state_store,
            state_cookie_name=STATE_COOKIE_NAME,
            state_expiration_seconds=settings.state_expiration_seconds,
            token_rotation_expiration_minutes=settings.token_refresh_minutes,
            callback_options=CALLBACK_OPTIONS,
        )
        oauth_settings.state_utils = StateCookie(
            cookie_name=STATE_COOKIE_NAME,
            expiration_seconds=settings.state_expiration_seconds,
            secure=settings.secure_cookies,
        )
        app = SlackApp(
            signing_secret=settings.signing_secret,
            client=client,
            authorize=StoreAuthorize(tokens=tokens, cache=cache, user_tokens_enabled=bool(settings.user_scopes)),
            installation_store=installation_store,
            oauth_flow=AppOAuthFlow(client=client, settings=oauth_settings),
            # The WSGI layer verifies signatures on the raw bytes before Bolt parses anything.
            request_verification_enabled=False,
            **UNUSED_BOLT_MIDDLEWARE_OFF,
        )
        # Uninstall / revocation deletes run before the ack, so a database failure means a retry.
        # (Replaces app.enable_token_revocation_listeners(); see bolt_app/lifecycle.py.)
        lifecycle.register(app, installation_store)
    else:
        client.token = settings.bot_token
        app = SlackApp(
            signing_secret=settings.signing_secret,
            client=client,
            token=settings.bot_token,
            request_verification_enabled=False,
            **UNUSED_BOLT_MIDDLEWARE_OFF,
        )

    # Events are acknowledged after their listener ran (up to a deadline): a listener that failed
    # because the database was unavailable is answered 503 and redelivered, never acked and lost.
    # Lazy functions mostly wait on Slack (Web API latency): with Bolt's 5 shared threads the
    # replies fell 16 s behind the answers in the benchmark; two per request thread keep up
    # without letting a burst start more work than the CPU can do.
    app._listener_runner = lifecycle.EventListenerRunner.replacing(
        app._listener_runner, max_workers=settings.web_threads + 4, lazy_workers=2 * settings.web_threads
    )
    app.settings = settings
    app.engine = engine
    app.tokens = tokens
    app.authorize_cache = cache
    app.features = build_features(engine)
    if isinstance(app.installation_store, InstallationStore):
        # Uninstall deletes the workspace's feature data in the same transaction as its tokens.
        app.installation_store.deletion_hooks.extend(app.features.deletion_hooks())
    app.error(_handle_error)
    register_listeners(app)
    lifecycle.streamline_listeners(app)
    background.attach(app, settings)
    return app


def _handle_error(error: Exception, logger: logging.Logger, body: Any = None) -> Optional[BoltResponse]:
    """Turn failures into answers Slack understands; never log the request body (it can hold secrets)."""
    if isinstance(error, InstallationNeedsReinstall):
        # Acknowledge and drop: retrying cannot help until the workspace reinstalls (logged once
        # when it was marked), and a non-2xx would make Slack retry into a storm.
        return BoltResponse(status=200, body="")
    if isinstance(error, crypto.TokenEncryptionError):
        # Wrong or missing key: an operator must fix SLACK_TOKEN_ENCRYPTION_KEYS; Slack retries meanwhile.
        logger.error("Request not processed, tokens cannot be decrypted: %s", _describe(error))
        return BoltResponse(status=503, body="", headers={"Retry-After": "1"})
    if isinstance(error, (TokensTemporarilyUnavailable, OperationalError, DBAPIError, PoolTimeoutError,
                          background.QueueUnavailable)):
        # Not acknowledged: Slack retries the delivery once we can serve it again.
        logger.error("Request not processed, Slack will retry: %s", _describe(error))
        return BoltResponse(status=503, body="", headers={"Retry-After": "1"})
    if lifecycle.raised_by_bolt_on_payload(error):
        # Bolt's routing choked on a signed payload shaped unlike Slack's: a bad request, not a 500.
        logger.warning("Malformed Slack payload refused: %s", lifecycle.describe_location(error))
        return BoltResponse(status=400, body="")
    logger.exception("Unhandled error: %s", _describe(error))
    return None


def _describe(error: Exception) -> str:
    # Driver errors can embed SQL parameters; the type and first line are enough to act on.
    text = str(error).splitlines()[0][:200] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


__all__ = ["SlackApp", "create_app", "workspace_key"]
