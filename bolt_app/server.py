"""Serving over HTTP with gunicorn (threaded workers), and the optional token refresher thread."""

from __future__ import annotations

import gc
import logging
import threading
from typing import Any, Optional

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger

from bolt_app import database
from bolt_app.logs import mask_all_handlers
from bolt_app.settings import Settings
from bolt_app.storage import crypto
from bolt_app.telemetry import exposition

logger = logging.getLogger(__name__)

GRACEFUL_TIMEOUT_SECONDS = 20
# Idle time a kept-alive connection may wait for its next request. The reverse proxy's idle
# upstream connections must expire sooner (deploy/nginx.conf: keepalive_timeout 4s), or it may
# send a request on a connection gunicorn is closing.
KEEPALIVE_SECONDS = 5


def prepare_database(settings: Settings) -> None:
    """Run once in the master before workers fork: migrate (embedded default) or check the schema."""
    engine = database.create_engine(settings.database_url, pool_size=1)
    try:
        if settings.is_sqlite:
            database.check_connection(engine)  # its folder, before the key file is written there
        keyring = None
        if settings.multi_workspace or settings.token_encryption_keys:
            # Resolved once here, before workers fork: a missing key on a server database stops
            # start-up, and the SQLite key file is created (and logged) once.
            keyring = crypto.keyring_from_settings(settings)
            crypto.bind(engine, keyring)
        if not settings.is_sqlite:
            # After the keys: a missing key is reported whether or not the server answers.
            database.check_connection(engine)
        auto = settings.auto_migrate if settings.auto_migrate is not None else settings.is_sqlite
        database.ensure_schema(engine, auto_migrate=auto)
        if keyring is not None:
            with engine.connect() as conn:
                # A wrong key fails here with a clear message, not on the first event.
                crypto.check_stored_tokens(conn, keyring)
    finally:
        engine.dispose()


def build_wsgi(settings: Settings):  # type: ignore[no-untyped-def]
    """The WSGI app of one worker process (called after fork: connections are never shared)."""
    from bolt_app.app import create_app
    from bolt_app.web import create_wsgi_app

    app = create_app(settings)
    if settings.token_refresh_interval_minutes and app.tokens is not None:
        start_refresher(app.tokens, settings)
    wsgi = create_wsgi_app(app)
    freeze_startup_objects()
    return wsgi



def freeze_startup_objects() -> None:
    """Move everything built at start-up (modules, the app, its pools) out of the garbage
    collector's reach: a full collection would scan it all with the GIL held, stalling every
    request thread (figures in docs/performance.md). Objects made later are collected as usual."""
    gc.collect()
    gc.freeze()


def start_refresher(tokens: Any, settings: Settings) -> threading.Thread:
    """Refresh tokens ahead of expiry in the background (off by default; cron can run `tokens refresh`)."""
    stop = threading.Event()
    interval = settings.token_refresh_interval_minutes * 60

    def loop() -> None:
        while not stop.wait(interval):
            try:
                summary = tokens.refresh_expiring(settings.token_refresh_minutes * 60)
                if summary.refreshed or summary.failed:
                    logger.info("Background token refresh: %s", summary)
            except Exception:
                logger.exception("Background token refresh failed")

    thread = threading.Thread(target=loop, name="token-refresher", daemon=True)
    thread.start()
    return thread


class MaskedGunicornLogger(GunicornLogger):
    """gunicorn's logger with the app's formatter (masking; JSON with LOG_FORMAT=json) from its
    first line on ("Starting gunicorn", "Listening at"), not only from `when_ready`."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        mask_all_handlers()


class GunicornServer(BaseApplication):
    def __init__(self, settings: Settings, options: dict[str, Any] | None = None,
                 metrics: Optional[exposition.GunicornMetrics] = None):
        self.settings_ = settings
        hooks: dict[str, Any] = {}
        if metrics is not None:
            # The master's metrics server and multiprocess directory (bolt_app/telemetry/exposition.py).
            hooks = {
                "post_fork": lambda server, worker: metrics.post_fork(),
                "child_exit": lambda server, worker: metrics.child_exit(worker.pid),
                "on_exit": lambda server: metrics.on_exit(),
            }
        self.options = {
            "bind": f"{settings.host}:{settings.port}",
            "workers": settings.web_concurrency,
            "worker_class": "gthread",
            "threads": settings.web_threads,
            # Slow clients: a gthread worker gives a connection one of its threads as soon as the
            # first bytes arrive, and that thread then waits, with no time limit gunicorn lets us
            # set, for the rest of the request. A few clients sending requests slowly (or never
            # finishing them) hold every thread. `timeout` below is the worker's heartbeat and does
            # not fire for them. So the app must not face the internet directly: in production
            # nginx (deploy/nginx.conf) reads every request in full, under header and body
            # timeouts, before gunicorn sees it; README "Running in production".
            "timeout": 30,
            "graceful_timeout": GRACEFUL_TIMEOUT_SECONDS,
            "keepalive": KEEPALIVE_SECONDS,
            # What is left to gunicorn: bounds on the request head (Slack's and browsers' requests
            # are far below them); beyond them gunicorn answers 400/414 without calling the app.
            "limit_request_line": 4094,
            "limit_request_fields": 50,
            "limit_request_field_size": 8190,
            "loglevel": settings.log_level.lower(),
            "errorlog": "-",
            "accesslog": None,
            "proc_name": "bolt-app",
            # gunicorn 27's control socket (~/.gunicorn/gunicorn.ctl) is unused here, and several
            # instances on one host would take it from each other.
            "control_socket_disable": True,
            "when_ready": lambda server: mask_all_handlers(),
            "post_worker_init": lambda worker: mask_all_handlers(),
            "logger_class": MaskedGunicornLogger,
            **hooks,
            **(options or {}),
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self):  # type: ignore[no-untyped-def]
        return build_wsgi(self.settings_)


def serve(settings: Settings) -> None:
    metrics = None
    if settings.metrics_port:
        # Before anything records, and before the database (a busy port is found first).
        metrics = exposition.GunicornMetrics(settings.host, settings.metrics_port)
    else:
        exposition.in_memory_only()
    try:
        _serve(settings, metrics)
    finally:
        if metrics is not None:
            metrics.on_exit()  # in the master only (gunicorn's workers return through here too)


def _serve(settings: Settings, metrics: Optional[exposition.GunicornMetrics]) -> None:
    prepare_database(settings)
    logger.info(
        "Serving on http://%s:%s with %d worker(s) x %d thread(s), database %s",
        settings.host,
        settings.port,
        settings.web_concurrency,
        settings.web_threads,
        settings.database_url_for_display,
    )
    GunicornServer(settings, metrics=metrics).run()
