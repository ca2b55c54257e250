"""The app factory: builds a Bolt `App` (OAuth, stores, authorize, listeners) from settings.

Tests build as many independent apps as they like; nothing here is global.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App, BoltResponse
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.oauth.oauth_settings import OAuthSettings
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from bolt_app import background, database, revocation
from bolt_app.answers import NotInstalledAnswers, UnhandledRequests
from bolt_app.features import Features, FeaturesMiddleware, build_features
from bolt_app.listeners import register_listeners
from bolt_app.oauth.flow import CALLBACK_OPTIONS, AppOAuthFlow, StateCookie
from bolt_app.settings import Settings
from bolt_app.storage import crypto
from bolt_app.storage.installation_store import InstallationStore
from bolt_app.storage.state_store import OAuthStateStore
from bolt_app.storage.tables import workspace_key
from bolt_app.tokens.authorize import AuthorizeCache, StoreAuthorize
from bolt_app.payload import PayloadCheck, describe_location, raised_by_bolt_on_payload
from bolt_app.lazy_work import attach_thread_runner, lower_thread_priority
from bolt_app.tokens.client import build_web_client
from bolt_app.tokens.installed import InstallationGate, InstalledTokens, WorkspaceNotInstalled
from bolt_app.tokens.rejections import TokenRejections
from bolt_app.tokens.rotation import InstallationNeedsReinstall, TokenService, TokensTemporarilyUnavailable

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
    features: Features  # feature services; listeners get them through the context (FeaturesMiddleware)
    # The task queue `lazy=` work goes to (bolt_app/background.attach), None when it runs here.
    task_queue: Optional[background.TaskQueue] = None


# A few connections beyond the pool for a burst; each process holds at most
# pool_size + POOL_OVERFLOW, so a deployment's connection count is known in advance
# (see README "Running in production").
POOL_OVERFLOW = 2


def pool_size(settings: Settings) -> int:
    """One connection per request thread, plus the authorize cache's and the token refresher's
    background threads. Lazy work holds a connection only for its short transactions."""
    return settings.web_threads + 2


def lazy_threads(settings: Settings) -> int:
    """Threads for `lazy=` functions (and Bolt's other background work) in one process. They
    mostly wait on the Web API: two per request thread keep the replies up with the answers
    without letting a burst start more work than the CPU can do."""
    return 2 * settings.web_threads


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
    rejections = TokenRejections()
    client = build_web_client(settings.api_url, rejections=rejections)
    lazy_executor = ThreadPoolExecutor(max_workers=lazy_threads(settings), thread_name_prefix="bolt-lazy",
                                       initializer=lower_thread_priority(settings.background_nice))
    common_options: dict[str, Any] = dict(
        signing_secret=settings.signing_secret,
        # The WSGI layer verifies signatures on the raw bytes before Bolt parses anything.
        request_verification_enabled=False,
        # Every listener's `ack=` step runs before the answer: a step that meets an unavailable
        # database answers 503 (Slack redelivers) instead of a 200 for work that never happened.
        # Web API calls that can wait go in `lazy=` functions, which start once the `ack=` step is
        # done; a modal's views.open stays in the step (its trigger_id expires after 3 s).
        process_before_response=True,
        listener_executor=lazy_executor,
        # Payload shape checks before authorize reads the ids (HTTP and Socket Mode alike).
        before_authorize=PayloadCheck(settings.api_url),
        # A signed, well-formed request no listener takes reaches the error handler (instead of
        # Bolt's 404), which answers it 200 with what Slack expects (bolt_app/answers.py).
        raise_error_for_unhandled_request=True,
        **UNUSED_BOLT_MIDDLEWARE_OFF,
    )
    tokens: TokenService | None = None
    cache: AuthorizeCache | None = None
    gate: InstallationGate | None = None

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
        authorize = StoreAuthorize(tokens=tokens, cache=cache, user_tokens_enabled=bool(settings.user_scopes))
        rejections.listeners.append(authorize.token_rejected)
        # Uninstalls and revocations committed by other processes: checked in the database before
        # each Web API call and in each feature write (docs/decisions/0002-uninstall-across-processes.md).
        installed = InstalledTokens(engine, settings.client_id)
        installed.removed_listeners.append(cache.invalidate_workspace)
        tokens.installed = installed
        gate = InstallationGate(settings.client_id)
        gate.removed_listeners.append(cache.invalidate_workspace)
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
            client=client,
            # An `Authorize` subclass is the one kind Bolt accepts beside OAuthSettings.
            authorize=authorize,
            installation_store=installation_store,
            oauth_flow=AppOAuthFlow(client=client, settings=oauth_settings),
            **common_options,
        )
        # Uninstall / revocation deletes run before the ack, so a database failure means a retry.
        revocation.register(app, installation_store)
        app.use(revocation.InstalledOnlyClients(installed))
    else:
        # The token travels on the client (passing it again only makes Bolt warn that it is unused).
        client.token = settings.bot_token
        app = SlackApp(client=client, **common_options)

    app.settings = settings
    app.engine = engine
    app.tokens = tokens
    app.authorize_cache = cache
    app.features = build_features(engine, gate=gate)
    if isinstance(app.installation_store, InstallationStore):
        # Uninstall deletes the workspace's feature data in the same transaction as its tokens.
        app.installation_store.deletion_hooks.extend(app.features.deletion_hooks())
    app.use(FeaturesMiddleware(app.features))
    if background.attach(app, settings) is None:
        attach_thread_runner(app, lazy_executor)
    app.error(error_handler(UnhandledRequests(), NotInstalledAnswers(lazy_executor)))
    register_listeners(app)
    return app


def error_handler(
    unhandled: UnhandledRequests, not_installed: NotInstalledAnswers
) -> Callable[..., Optional[BoltResponse]]:
    """The app's error handler (`app.error`), with the per-process state its answers need."""

    def handle_error(error: Exception, logger: logging.Logger, body: Any = None) -> Optional[BoltResponse]:
        if isinstance(error, BoltUnhandledRequestError):
            return unhandled.answer(body)
        if isinstance(error, WorkspaceNotInstalled):
            return not_installed.answer(body, error.workspace_key)
        return _handle_error(error, logger, body)

    return handle_error


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
    if raised_by_bolt_on_payload(error):
        # Bolt's routing choked on a signed payload shaped unlike Slack's: a bad request, not a 500.
        logger.warning("Malformed Slack payload refused: %s", describe_location(error))
        return BoltResponse(status=400, body="")
    # A bug: logged, and acknowledged all the same. Retrying would only repeat it, and Slack turns
    # off the event subscriptions of an app whose deliveries keep failing.
    logger.exception("Unhandled error: %s", _describe(error))
    return BoltResponse(status=200, body="")


def _describe(error: Exception) -> str:
    # Driver errors can embed SQL parameters; the type and first line are enough to act on.
    text = str(error).splitlines()[0][:200] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


__all__ = ["SlackApp", "create_app", "workspace_key"]
