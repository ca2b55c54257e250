"""The WSGI application served by gunicorn: Bolt's endpoints plus a health check.

Routes: POST /slack/events (events, commands, interactivity), GET /slack/install,
GET /slack/oauth_redirect, GET /healthz, nothing else (metrics are served on METRICS_PORT only:
bolt_app/telemetry/exposition.py). Hostile input never reaches Bolt as a 500: oversized bodies
are refused before they are read, undecodable ones are answered 400. Slack requests and OAuth
pages are counted (by kind and answer status, with the time to answer), and log lines written
while one is served carry its kind and ids (bolt_app/telemetry).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any, Callable, Iterable
from urllib.parse import urlparse

from slack_bolt import BoltRequest, BoltResponse
from sqlalchemy import exc as sa_exc

from bolt_app import background, database
from bolt_app.app import SlackApp
from bolt_app.payload import MALFORMED_PAYLOAD_ERRORS, describe_location
from bolt_app.telemetry import context, labels, metrics

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
# An oversized body up to this size is read and dropped so its sender gets the 413; a larger one
# is not worth reading (the connection is closed).
DRAIN_LIMIT_BYTES = 8 * MAX_BODY_BYTES
SIGNATURE_WINDOW_SECONDS = 5 * 60
EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"

StartResponse = Callable[..., Any]


def _page_security_headers(authorize_url: str) -> list[tuple[str, str]]:
    origin = "{0.scheme}://{0.netloc}".format(urlparse(authorize_url))
    return [
        (
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            f"form-action 'self' {origin}; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Content-Type-Options", "nosniff"),
        # Install and callback pages carry one-time state: never cache them anywhere.
        ("Cache-Control", "no-store"),
        ("Pragma", "no-cache"),
    ]


class WebApp:
    """A WSGI callable around one `SlackApp`."""

    def __init__(self, app: SlackApp, *, max_body_bytes: int = MAX_BODY_BYTES):
        self.app = app
        self.max_body_bytes = max_body_bytes
        flow = app.oauth_flow
        self.install_path = flow.install_path if flow else None
        self.redirect_path = flow.redirect_uri_path if flow else None
        self.page_headers = _page_security_headers(app.settings.authorize_url)
        self.signing_secret = app.settings.signing_secret.encode() if app.settings.signing_secret else None
        # Set by the Socket Mode runner so /healthz can report the socket too.
        self.socket_state: Callable[[], str] | None = None

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if path == EVENTS_PATH:
                if method != "POST":
                    return self._plain(start_response, 405, "Method Not Allowed", [("Allow", "POST")])
                return self._events(environ, start_response)
            if path == HEALTH_PATH:
                return self._health(start_response)
            if path in (self.install_path, self.redirect_path):
                if method not in ("GET", "HEAD"):
                    return self._plain(start_response, 405, "Method Not Allowed", [("Allow", "GET")])
                page = "install" if path == self.install_path else "callback"
                answer = _Answer(start_response)
                try:
                    with context.bound(request_kind=f"oauth:{page}"):
                        return self._oauth(environ, answer, path)
                finally:
                    metrics.oauth_request(page, answer.status or 500)
            return self._plain(start_response, 404, "Not Found")
        except Exception:  # last line of defence: log, answer, keep serving
            logger.exception("Unhandled error serving %r %r", method, path)
            return self._plain(start_response, 500, "Internal Server Error")

    # ------------------------------------------------------------------ routes

    def _events(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        """A Slack request, counted by kind and answer status, timed until its answer."""
        started = time.perf_counter()
        answer = _Answer(start_response)
        try:
            return self._slack_request(environ, answer)
        finally:
            metrics.slack_request(answer.kind, answer.name, answer.status or 500, time.perf_counter() - started)

    def _slack_request(self, environ: dict, start_response: "_Answer") -> Iterable[bytes]:
        start_response.kind = labels.MALFORMED
        body = self._read_body(environ)
        if body is None:
            return self._plain(start_response, 413, "Request body too large")
        start_response.kind = labels.UNVERIFIED
        if self.signing_secret is not None and not verify_signature(
            self.signing_secret,
            body,
            environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP"),
            environ.get("HTTP_X_SLACK_SIGNATURE"),
        ):
            # Checked on the raw bytes before anything is parsed: unsigned input never reaches Bolt.
            logger.info("Refused a request with a missing, invalid or stale Slack signature")
            return self._plain(start_response, 401, "Invalid request signature")
        start_response.kind = labels.MALFORMED
        try:
            text = body.decode("utf-8")
            request = BoltRequest(body=text, query=environ.get("QUERY_STRING", ""), headers=_headers(environ))
        except (UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError, IndexError,
                RecursionError) as error:
            # Bolt parses the body before verifying the signature; a body it cannot parse is bad input.
            logger.info("Malformed request body refused: %s", type(error).__name__)
            return self._plain(start_response, 400, "Malformed request body")
        if not isinstance(request.body, dict) or not request.body:
            logger.info("Request body with no Slack payload refused")
            return self._plain(start_response, 400, "Malformed request body")
        start_response.kind, start_response.name = labels.request_kind(request.body)
        with context.bound(request_kind=labels.describe_kind(start_response.kind, start_response.name),
                           **context.payload_fields(request.body)):
            try:
                response = self.app.dispatch(request)
            except MALFORMED_PAYLOAD_ERRORS as error:
                # Raised while Bolt handled its own error about this payload (its error handler builds
                # arguments from the body): the payload is the problem, not the server.
                logger.warning("Malformed Slack payload refused: %s", describe_location(error))
                return self._plain(start_response, 400, "Malformed request body")
        return self._respond(start_response, response)

    def _oauth(self, environ: dict, start_response: StartResponse, path: str) -> Iterable[bytes]:
        flow = self.app.oauth_flow
        assert flow is not None
        # The scheme as gunicorn saw it: "https" behind a TLS proxy it trusts (FORWARDED_ALLOW_IPS).
        request = BoltRequest(body="", query=environ.get("QUERY_STRING", ""), headers=_headers(environ),
                              context={"url_scheme": environ.get("wsgi.url_scheme", "http")})
        try:
            response = flow.handle_installation(request) if path == self.install_path else flow.handle_callback(request)
        except (sa_exc.DBAPIError, sa_exc.TimeoutError) as error:
            # The install page issues a state in the database: during an outage say "try again" (503),
            # not 500. (Callback storage failures are handled by the flow's storage_error page.)
            logger.error("OAuth page unavailable, database error: %s", type(error).__name__)
            return self._plain(start_response, 503, "Service Unavailable", [("Retry-After", "5")] + self.page_headers)
        except MALFORMED_PAYLOAD_ERRORS as error:
            # Query values no browser coming back from Slack sends (non-ASCII state, a `team` with
            # spaces): a bad request, never a 500.
            logger.warning("OAuth request refused: %s", describe_location(error))
            return self._plain(start_response, 400, "Bad Request", self.page_headers)
        return self._respond(start_response, response, self.page_headers)

    def _health(self, start_response: StartResponse) -> Iterable[bytes]:
        db_ok = database.ping(self.app.engine)
        payload: dict[str, str] = {"status": "ok" if db_ok else "unavailable", "database": "ok" if db_ok else "unreachable"}
        healthy = db_ok
        if self.socket_state is not None:
            payload["socket_mode"] = state = self.socket_state()
            healthy = healthy and state == "connected"
            if not healthy:
                payload["status"] = "unavailable"
        queue_ok = background.queue_health(self.app)  # None without TASK_QUEUE_URL
        if queue_ok is not None:
            payload["queue"] = "ok" if queue_ok else "unreachable"
            healthy = healthy and queue_ok
            payload["status"] = "ok" if healthy else "unavailable"
        body = json.dumps(payload).encode()
        start_response(
            "200 OK" if healthy else "503 Service Unavailable",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")],
        )
        return [body]

    # ------------------------------------------------------------------ helpers

    def _read_body(self, environ: dict) -> bytes | None:
        """The body, or None when it is over the limit (checked before reading it)."""
        stream = environ["wsgi.input"]
        length_header = environ.get("CONTENT_LENGTH") or ""
        try:
            length = int(length_header) if length_header else None
        except ValueError:
            length = None
        if length is not None:
            if length > self.max_body_bytes:
                if length <= DRAIN_LIMIT_BYTES:
                    # Read and drop it: closing with unread bytes sends a reset, and the client
                    # (still sending) would see a broken pipe instead of the 413.
                    while length > 0 and (chunk := stream.read(min(length, 65536))):
                        length -= len(chunk)
                return None
            return stream.read(length) if length > 0 else b""
        body = stream.read(self.max_body_bytes + 1)
        return None if len(body) > self.max_body_bytes else body

    @staticmethod
    def _plain(start_response: StartResponse, status: int, text: str, extra: list | None = None) -> Iterable[bytes]:
        body = text.encode()
        start_response(
            f"{status} {text if status != 413 else 'Payload Too Large'}",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))] + (extra or []),
        )
        return [body]

    @staticmethod
    def _respond(
        start_response: StartResponse, response: BoltResponse, extra: list[tuple[str, str]] | None = None
    ) -> Iterable[bytes]:
        body = (response.body or "").encode("utf-8")
        headers = [(name, value) for name, values in response.headers.items() for value in values]
        names = {name.lower() for name, _ in headers}
        headers += [(k, v) for k, v in (extra or []) if k.lower() not in names]
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{response.status} {_REASONS.get(response.status, 'Status')}", headers)
        return [body]


class _Answer:
    """A WSGI start_response that notes the status it was given, and the request's kind (labels)."""

    def __init__(self, start_response: StartResponse):
        self.start_response = start_response
        self.status: int | None = None
        self.kind, self.name = labels.OTHER, ""

    def __call__(self, status: str, headers: list, *exc_info: Any) -> Any:
        self.status = int(status.split(" ", 1)[0])
        return self.start_response(status, headers, *exc_info)


_REASONS = {200: "OK", 302: "Found", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 413: "Payload Too Large", 500: "Internal Server Error",
            503: "Service Unavailable"}


def verify_signature(secret: bytes, body: bytes, timestamp: str | None, signature: str | None,
                     now: float | None = None) -> bool:
    """Slack's v0 signature over the raw body, with a five-minute window against replays."""
    if not timestamp or not signature:
        return False
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - sent_at) > SIGNATURE_WINDOW_SECONDS:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()
    # As bytes: compare_digest refuses str with non-ASCII characters (a header may carry any latin-1).
    return hmac.compare_digest(expected.encode(), signature.encode(errors="surrogateescape"))


def _headers(environ: dict) -> dict[str, str]:
    # Bolt's own `x-slack-bolt-*` headers (run only a lazy function) come from the task queue, never
    # from a client: the signature covers the body, not the headers.
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
               if key.startswith("HTTP_") and not key.startswith("HTTP_X_SLACK_BOLT_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = environ["CONTENT_LENGTH"]
    return headers


def create_wsgi_app(app: SlackApp) -> WebApp:
    return WebApp(app)
