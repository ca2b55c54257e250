"""``SlackStandIn``: the HTTP server tying the OAuth, Web API and app-client parts together."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .appclient import _AppClientMixin
from .http import Response, html_response, json_response, text_response
from .oauth import _OAuthMixin
from .pages import render_index
from .socketmode import _SocketModeMixin
from .webapi import _WebApiMixin

logger = logging.getLogger("slack_standin")


class SlackStandIn(_OAuthMixin, _WebApiMixin, _AppClientMixin, _SocketModeMixin):
    """A local fake of slack.com for one app: OAuth install, Web API, token rotation, signed requests.

    Construct, ``start()`` (or use as a context manager), point the app's WebClient at
    ``api_url`` and its OAuth flow at ``authorize_url``, set ``request_url`` to where the
    app listens, then drive it from tests. See the package docstring for a walkthrough.
    """

    def __init__(self, **settings: Any) -> None:
        # Credentials, token lifetime and latency: see `_Core.__init__`.
        super().__init__(**settings)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        #: The sandbox's web console (console.py), when attached: it answers ``/`` and ``/console/...``.
        self.console: Any = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> "SlackStandIn":
        """Serve in a background daemon thread; ``port=0`` picks a free port. Returns self."""
        if self._server is not None:
            raise RuntimeError("stand-in already started")
        server = _Server((host, port), _Handler)
        server.standin = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="slack-standin", daemon=True
        )
        self._thread.start()
        logger.info("Slack stand-in listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and release the port (safe to call twice)."""
        self._stop_socket_mode()
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> "SlackStandIn":
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT`` (only while started)."""
        return self._base_url()

    @property
    def api_url(self) -> str:
        """Web API base in slack_sdk's ``base_url`` form (trailing slash)."""
        return self.url + "/api/"

    @property
    def authorize_url(self) -> str:
        """Bolt's ``OAuthSettings(authorization_url=...)``."""
        return self.url + "/oauth/v2/authorize"

    def _base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("stand-in is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ routing

    def _route(self, verb: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        parts = urlsplit(target)
        path, query = parts.path, parts.query
        if self.console is not None and self.console.handles(path):
            return self.console.handle(verb, target, headers, body)
        if path.startswith("/api/"):
            return self._handle_api(path[len("/api/") :], query, headers, body)
        form = dict(parse_qsl(query, keep_blank_values=True))
        if path == "/oauth/v2/authorize" and verb == "GET":
            return self._authorize_page(form)
        if path == "/oauth/v2/authorize/decision" and verb == "POST":
            form.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            return self._authorize_decision(form)
        if path.startswith("/response_url/") and verb == "POST":
            return self._response_url(path[len("/response_url/") :], headers, body)
        if path == "/" and verb == "GET":
            with self._lock:
                workspaces = list(self._workspaces.values())
            return html_response(render_index(self.app_id, self.api_url, workspaces))
        return json_response({"ok": False, "error": "not_found"}, status=404)

    def _response_url(self, rid: str, headers: dict[str, str], body: bytes) -> Response:
        """What the app posts to a slash command's / interaction's ``response_url``."""
        if self.response_url_delay_seconds:
            time.sleep(self.response_url_delay_seconds)
        text = body.decode("utf-8", "replace")
        if headers.get("content-type", "").startswith("application/json"):
            try:
                parsed: Any = json.loads(text)
            except json.JSONDecodeError:
                return text_response("invalid_payload", status=400)
        else:
            form = dict(parse_qsl(text, keep_blank_values=True))
            parsed = json.loads(form["payload"]) if "payload" in form else form
        with self._lock:
            target = self._response_urls.get(rid)
            if target is None:
                return text_response("expired_url", status=404)
            self._responses.append(dict(target, body=parsed, at=time.time()))
        return text_response("ok")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Several app processes call at once in a burst; the default backlog (5) resets connections.
    request_queue_size = 128
    standin: SlackStandIn

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client dropping its kept-alive connection is normal, not worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive like Slack's API servers, so clients can reuse connections.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, Nagle's algorithm holds the body
    # back until the client's delayed ACK (~40 ms on every kept-alive call).
    disable_nagle_algorithm = True
    server: _Server
    server_version = "SlackStandIn/1.0"

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        self._serve("POST")

    def _serve(self, verb: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            response = self.server.standin._route(verb, self.path, headers, body)
        except Exception:  # a bug in the stand-in should read as a 500, not a hung test
            logger.exception("stand-in failed on %s %s", verb, urlsplit(self.path).path)
            response = json_response({"ok": False, "error": "standin_internal_error"}, status=500)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from base class
        # The default logs the full request line, which may carry tokens in the query string.
        logger.debug("%s %s", self.command, urlsplit(self.path).path)
