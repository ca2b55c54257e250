"""Socket Mode (local development, `slack run`): Slack's deliveries arrive over a websocket.

`python main.py` runs this instead of gunicorn when `SLACK_APP_TOKEN` is set. One process:

* Bolt's `SocketModeHandler` on slack_sdk's built-in client dispatches envelopes to the same app
  `create_app` builds for HTTP (same listeners, installation store, token rotation). Its WebClient
  points at `SLACK_API_URL`, so `apps.connections.open` goes where every other call goes.
  Payloads get the checks the HTTP endpoint applies (`bolt_app.payload.PayloadCheck`, a Bolt
  middleware); one that fails them is not acknowledged, as HTTP answers 400.
* The client re-establishes a dropped connection itself (a fresh `apps.connections.open` each
  time): at once after a close frame or Slack's `disconnect` message, within one ping interval
  (`PING_INTERVAL_SECONDS`, 2 s) after a reset, within four or five intervals when the far end
  goes silent or closes without a close frame (its pings go unanswered).
* A small threaded WSGI server (the standard library's wsgiref) on HOST:PORT serves `/healthz`
  (with the socket's state) and, in multi-workspace mode, the OAuth install and callback pages.
  `/slack/events` is refused there: in Socket Mode nothing is delivered over HTTP and no signing
  secret is configured to verify it. Not gunicorn: its arbiter forks workers and owns the
  signals, and each worker would open its own socket connection; Socket Mode wants one process
  holding one connection, with the health check reading that connection's state directly.
* SIGTERM / SIGINT: stop taking envelopes off the socket (unacked ones Slack redelivers), let the
  in-flight ones finish and send their acks, close the socket, let the listeners running after
  their acks finish, stop the HTTP server, exit 0. Everything is bounded by `SHUTDOWN_SECONDS`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from socketserver import ThreadingMixIn
from typing import Any, Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.builtin import SocketModeClient

from bolt_app.app import SlackApp, create_app
from bolt_app.settings import Settings
from bolt_app.tokens.client import build_web_client
from bolt_app.web import EVENTS_PATH, WebApp, create_wsgi_app

logger = logging.getLogger(__name__)

#: Client pings this often; a connection without pongs for four intervals is replaced.
PING_INTERVAL_SECONDS = 2.0
#: Upper bound for a graceful shutdown (in-flight envelopes, listeners, HTTP requests).
SHUTDOWN_SECONDS = 10.0
#: Answers to `apps.connections.open` that retrying cannot fix: the app token is wrong.
FATAL_CONNECT_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "not_allowed_token_type", "token_revoked", "account_inactive", "missing_scope"}
)
EXIT_CONFIG = 2

StartResponse = Callable[..., Any]


class SocketModeConfigError(Exception):
    """Slack refused the app-level token; the operator must fix SLACK_APP_TOKEN."""


# ---------------------------------------------------------------------------------- HTTP side


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    # server_close() waits for requests in progress (the runner bounds that wait).
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True


class _RequestHandler(WSGIRequestHandler):
    timeout = 30  # a client that stops sending cannot hold a thread forever

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
        # The default writes the request line to stderr; OAuth callbacks carry the code and state.
        logger.debug("%r %r", self.command, (self.path or "").split("?", 1)[0])


def socket_mode_wsgi(web: WebApp) -> Callable[[dict, StartResponse], Iterable[bytes]]:
    """The WSGI app served next to the socket: everything but `/slack/events`."""

    def application(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == EVENTS_PATH:
            body = b"Socket Mode: Slack delivers events over the websocket, not to this URL."
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                             ("Content-Length", str(len(body)))])
            return [body]
        return web(environ, start_response)

    return application


# ---------------------------------------------------------------------------------- socket side


# ---------------------------------------------------------------------------------- runner


def _within(deadline: float, work: Callable[[], Any], name: str) -> bool:
    """Run `work` on a helper thread; True if it finished before `deadline` (time.monotonic())."""
    thread = threading.Thread(target=work, name=f"shutdown-{name}", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        logger.warning("Shutdown: gave up waiting for %s", name)
        return False
    return True


class SocketModeRunner:
    """The app over Socket Mode plus its HTTP pages; `run()` blocks until a signal or `stop()`."""

    def __init__(self, settings: Settings, *, app: SlackApp | None = None):
        assert settings.app_token, "Socket Mode needs SLACK_APP_TOKEN"
        self.settings = settings
        self.app = app or create_app(settings)
        self.handler = SocketModeHandler(
            self.app,
            app_token=settings.app_token,
            # apps.connections.open goes to SLACK_API_URL like every other call.
            web_client=build_web_client(settings.api_url),
            ping_interval=PING_INTERVAL_SECONDS,
            concurrency=settings.web_threads,
        )
        self.web = create_wsgi_app(self.app)
        self.web.socket_state = self.state
        self.http: WSGIServer | None = None
        self._http_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._stopping = False
        self._ever_connected = False
        #: False when the last shutdown had to give up waiting for something.
        self.finished_cleanly = True

    # ------------------------------------------------------------------ state

    def state(self) -> str:
        """`connected`, `connecting` (never yet), `reconnecting`, or `stopping` (for /healthz)."""
        if self._stopping:
            return "stopping"
        if self.handler.client.is_connected():
            self._ever_connected = True
            return "connected"
        return "reconnecting" if self._ever_connected else "connecting"

    @property
    def port(self) -> int:
        assert self.http is not None
        return self.http.server_address[1]

    # ------------------------------------------------------------------ lifecycle

    def start_http(self) -> None:
        self.http = make_server(
            self.settings.host,
            self.settings.port,
            socket_mode_wsgi(self.web),
            server_class=_ThreadingWSGIServer,
            handler_class=_RequestHandler,
        )
        self._http_thread = threading.Thread(
            target=self.http.serve_forever, kwargs={"poll_interval": 0.1}, name="http", daemon=True
        )
        self._http_thread.start()

    def connect(self) -> bool:
        """Open the first connection, retrying what may pass; False if stopped meanwhile."""
        delay = 1.0
        while not self._stop.is_set():
            try:
                self.handler.connect()
                return True
            except SlackApiError as error:
                code = str(error.response.get("error") or "")
                if code in FATAL_CONNECT_ERRORS:
                    raise SocketModeConfigError(
                        f"Slack refused SLACK_APP_TOKEN at apps.connections.open ({code}). Use an app-level "
                        "token with the connections:write scope (Basic Information > App-Level Tokens)."
                    ) from None
                logger.warning("Socket Mode: apps.connections.open failed (%s); retrying in %.0f s", code, delay)
            except Exception as error:  # network trouble reaching SLACK_API_URL
                logger.warning("Socket Mode: cannot reach Slack (%s); retrying in %.0f s", type(error).__name__, delay)
            self._stop.wait(delay)
            delay = min(delay * 2, 10.0)
        return False

    def stop(self) -> None:
        """Ask `run()` to shut down (signal handlers and tests call this)."""
        self._stop.set()

    def run(self, install_signal_handlers: bool = True) -> int:
        if install_signal_handlers:
            self._install_signal_handlers()
        try:
            self.start_http()
        except OSError as error:
            logger.error("Cannot serve HTTP on %s:%s (%s); set PORT to a free port", self.settings.host,
                         self.settings.port, error.strerror or error)
            return EXIT_CONFIG
        try:
            if self.connect():
                self._ever_connected = self.handler.client.is_connected()
                logger.info(
                    "Socket Mode %s (%s-workspace mode); /healthz%s on http://%s:%s",
                    "connected" if self._ever_connected else "connecting",
                    "multi" if self.settings.multi_workspace else "single",
                    " and the OAuth install pages" if self.settings.multi_workspace else "",
                    self.settings.host,
                    self.port,
                )
            while not self._stop.wait(0.5):
                pass
        except SocketModeConfigError as error:
            logger.error("%s", error)
            self.shutdown()
            return EXIT_CONFIG
        self.shutdown()
        return 0

    def _install_signal_handlers(self) -> None:
        def on_signal(signum: int, frame: Any) -> None:
            if self._stop.is_set():
                logger.warning("Second %s: exiting now", signal.Signals(signum).name)
                os._exit(1)
            logger.info("%s received: shutting down", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def shutdown(self, timeout: float = SHUTDOWN_SECONDS) -> bool:
        """Close the socket, finish in-flight work (bounded), stop HTTP. True if nothing was cut short."""
        deadline = time.monotonic() + timeout
        self._stopping = True
        client = self.handler.client
        # No reconnects from here on, and no new envelopes taken off the queue: whatever is not
        # acked when the socket closes, Slack delivers again (to the next connection).
        client.default_auto_reconnect_enabled = False
        client.auto_reconnect_enabled = False
        client.closed = True
        finished = _within(deadline, client.message_processor.shutdown, "the envelope dispatcher")
        # Envelopes being dispatched send their acks over the still-open socket.
        finished &= _within(deadline, client.message_workers.shutdown, "in-flight envelopes")
        finished &= _within(deadline, self._close_socket, "the socket")
        # Listeners Bolt runs after the ack (replies through the Web API) finish too.
        executor = self.app.listener_runner.listener_executor
        finished &= _within(deadline, getattr(executor, "shutdown", lambda: None), "running listeners")
        if self.http is not None:
            http = self.http
            finished &= _within(deadline, lambda: (http.shutdown(), http.server_close()), "HTTP requests")
        self.app.engine.dispose()
        self.finished_cleanly = finished
        if finished:
            logger.info("Shut down cleanly")
        return finished

    def _close_socket(self) -> None:
        close_quickly(self.handler.client)


def close_quickly(client: SocketModeClient) -> None:
    """Close a Socket Mode client now: shutting the socket down first wakes the receiving thread
    at once instead of at its 3-second read timeout."""
    sock = getattr(client.current_session, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    client.close()


def serve_socket_mode(settings: Settings) -> int:
    """`python main.py` with SLACK_APP_TOKEN: migrate or check the schema, then run until a signal."""
    from bolt_app.server import prepare_database, start_refresher
    from bolt_app.telemetry import exposition

    exposition.in_memory_only()  # one process
    metrics_server = exposition.serve_process_metrics(settings.host, settings.metrics_port)
    prepare_database(settings)
    runner = SocketModeRunner(settings)
    if settings.token_refresh_interval_minutes and runner.app.tokens is not None:
        start_refresher(runner.app.tokens, settings)
    code = runner.run()
    if metrics_server is not None:
        metrics_server.stop()
    if not runner.finished_cleanly:
        # Threads still stuck after the bounded wait must not keep the process alive.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
