"""The WSGI application served by gunicorn: Bolt's endpoints plus a health check.

Routes: POST /slack/events (events, commands, interactivity), GET /slack/install,
GET /slack/oauth_redirect, GET /healthz. Hostile input never reaches Bolt as a 500: oversized
bodies are refused before they are read, undecodable ones are answered 400.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable
from urllib.parse import urlparse

from slack_bolt import BoltRequest, BoltResponse
from sqlalchemy import exc as sa_exc

from bolt_app import database
from bolt_app.app import SlackApp
from bolt_app.lifecycle import MALFORMED_PAYLOAD_ERRORS, answers_first, defer_lazy, describe_location
from bolt_app.settings import DEFAULT_API_URL

if TYPE_CHECKING:
    from bolt_app.lazy_processes import LazyProcess

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


class AnswerThenRun(list):
    """A WSGI response body that starts deferred work from `close()`, which the server calls
    once the body has been sent (PEP 3333), whether or not sending succeeded."""

    def __init__(self, chunks: Iterable[bytes], after: list[Callable[[], None]]):
        super().__init__(chunks)
        self._after = after

    def close(self) -> None:
        after = self._after
        for start in after:
            try:
                start()
            except Exception:  # noqa: BLE001 - e.g. the pool is shutting down; the others still start
                logger.exception("Could not start work after the answer")
        # The starts hold the request, which holds this list: emptied, the request is freed by
        # reference counting when its work ends instead of waiting for a full garbage collection.
        after.clear()


class WebApp:
    """A WSGI callable around one `SlackApp`."""

    def __init__(self, app: SlackApp, *, max_body_bytes: int = MAX_BODY_BYTES):
        self.app = app
        self.max_body_bytes = max_body_bytes
        flow = app.oauth_flow
        self.install_path = flow.install_path if flow else None
        self.redirect_path = flow.redirect_uri_path if flow else None
        self.page_headers = _page_security_headers(app.settings.authorize_url)
        # Bolt posts to a payload's response_url (e.g. "please reinstall"): only Slack's own hosts.
        self.response_hosts = slack_hosts(app.settings.api_url)
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
                return self._oauth(environ, start_response, path)
            return self._plain(start_response, 404, "Not Found")
        except Exception:  # last line of defence: log, answer, keep serving
            logger.exception("Unhandled error serving %r %r", method, path)
            return self._plain(start_response, 500, "Internal Server Error")

    # ------------------------------------------------------------------ routes

    def _events(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        body = self._read_body(environ)
        if body is None:
            return self._plain(start_response, 413, "Request body too large")
        if self.signing_secret is not None and not verify_signature(
            self.signing_secret,
            body,
            environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP"),
            environ.get("HTTP_X_SLACK_SIGNATURE"),
        ):
            # Checked on the raw bytes before anything is parsed: unsigned input never reaches Bolt.
            logger.info("Refused a request with a missing, invalid or stale Slack signature")
            return self._plain(start_response, 401, "Invalid request signature")
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
        problem = payload_problem(request, self.response_hosts)
        if problem is not None:
            # Signed, but not shaped like anything Slack sends: Bolt's internals and the listeners
            # dereference these fields, and the ids reach database queries.
            logger.info("Malformed Slack payload refused: %s", problem)
            return self._plain(start_response, 400, "Malformed request body")
        child = self._lazy_process_for(request)
        if child is not None:
            # A lazy process dispatches it through Bolt; its answer would be this one.
            try:
                answer = self._respond(start_response, _EMPTY_OK)
            except BaseException:
                child.cancel_reservation()  # no close() will come to deliver it
                raise
            return AnswerThenRun(answer, [functools.partial(self._deliver, child, request)])
        lazy_starts = defer_lazy(request)
        try:
            response = self.app.dispatch(request)
        except MALFORMED_PAYLOAD_ERRORS as error:
            # Raised while Bolt handled its own error about this payload (its error handler builds
            # arguments from the body): the payload is the problem, not the server.
            logger.warning("Malformed Slack payload refused: %s", describe_location(error))
            return self._plain(start_response, 400, "Malformed request body")
        answer = self._respond(start_response, response)
        return AnswerThenRun(answer, lazy_starts) if lazy_starts else answer

    def _lazy_process_for(self, request: BoltRequest) -> "LazyProcess | None":
        """A lazy process with a slot reserved for this whole request, when it may be answered
        before any dispatch (see lifecycle.answer_first); None otherwise."""
        pool = self.app.lazy_pool
        if pool is None or pool.in_trouble() or not answers_first(self.app, request):
            return None
        return pool.reserve()

    def _deliver(self, child: "LazyProcess", request: BoltRequest) -> None:
        # After the answer: writing to the pipe lets go of the GIL, and taking it back waits for
        # the worker's other threads (up to the 5 ms switch interval), so it no longer delays it.
        pool = self.app.lazy_pool
        if pool is None or not pool.deliver(child, request):
            logger.warning("A lazy process ended before it got an answered request; dispatching it here")
            self.app.dispatch(request)

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


# Bolt's answer to an ack() without arguments, built once for the answer-first path.
_EMPTY_OK = BoltResponse(status=200, body="")
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


# Slack ids (T…, E…, U…, W…, B…, C…, D…, G…): short, plain. Anything else never reaches a query.
_SLACK_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_OBJECT_FIELDS = ("event", "view", "container", "message", "state")
_OBJECT_OR_ID_FIELDS = ("channel", "team", "enterprise", "user")
_LIST_OF_OBJECT_FIELDS = ("authorizations", "actions")
_CALLBACK_ID_TYPES = ("shortcut", "message_action", "interactive_message", "dialog_submission", "dialog_cancellation",
                      "workflow_step_edit")
# Interactions always name the user who acted (`user.id`); listeners rely on it.
_INTERACTIVE_TYPES = ("block_actions", "block_suggestion", "view_submission", "view_closed", "shortcut",
                      "message_action", "interactive_message", "dialog_submission")
_CONTEXT_IDS = ("enterprise_id", "team_id", "user_id", "channel_id", "actor_enterprise_id", "actor_team_id",
                "actor_user_id")


@dataclass(frozen=True)
class SlackOrigins:
    """Where a payload's response_url may point: the Slack the app talks to (SLACK_API_URL).

    For https://slack.com/api/: https on the default port, at slack.com or any host under
    .slack.com (hooks.slack.com). Whatever the API URL, its own scheme, host and port exactly
    (a stand-in on http://127.0.0.1:PORT in tests: that origin and no other)."""

    scheme: str
    host: str
    port: int | None
    suffix: str | None  # subdomains allowed (https on the default port only)

    def allows(self, url: object) -> bool:
        if not isinstance(url, str):
            return False
        try:
            parsed = urlparse(url)
            host, port = (parsed.hostname or "").lower(), parsed.port
        except ValueError:  # a port that is not a number, a malformed IPv6 host
            return False
        if not host or parsed.username is not None or parsed.password is not None:
            return False
        port = port if port is not None else _DEFAULT_PORTS.get(parsed.scheme)
        if (parsed.scheme, host, port) == (self.scheme, self.host, self.port):
            return True
        return (self.suffix is not None and parsed.scheme == "https" and port == 443
                and (host == self.suffix[1:] or host.endswith(self.suffix)))


_DEFAULT_PORTS = {"https": 443, "http": 80}


def slack_hosts(api_url: str) -> SlackOrigins:
    """The origins a response_url may have for the Slack at `api_url` (see `SlackOrigins`)."""
    parsed = urlparse(api_url)
    host = (parsed.hostname or "").lower()
    port = parsed.port if parsed.port is not None else _DEFAULT_PORTS.get(parsed.scheme)
    domain = host[4:] if host.startswith("api.") else host
    suffix = "." + domain if parsed.scheme == "https" else None
    return SlackOrigins(parsed.scheme, host, port, suffix)


def payload_problem(request: BoltRequest, response_hosts: SlackOrigins | None = None) -> str | None:
    """What makes a signed body unlike any Slack payload (None when it is plausible).

    Only the structure Bolt's routing and the listeners rely on is checked: the fields Slack
    always sends as objects are objects, the type fields are strings, every id Bolt resolved for
    the request (and that queries filter on) is a short plain Slack id, and a response_url (which
    Bolt and the listeners post to) points at Slack.
    """
    body = request.body
    kind = body.get("type")
    if kind is not None and not isinstance(kind, str):
        return "type is not a string"
    for name in _OBJECT_FIELDS:
        if name in body and not isinstance(body[name], dict):
            return f"{name} is not an object"
    for name in _OBJECT_OR_ID_FIELDS:
        value = body.get(name)
        if value is not None and not isinstance(value, (dict, str)):
            return f"{name} is neither an object nor an id"
    for name in _LIST_OF_OBJECT_FIELDS:
        value = body.get(name)
        if name in body and not (isinstance(value, list) and all(isinstance(item, dict) for item in value)):
            return f"{name} is not a list of objects"
    if "event" in body and not isinstance(body["event"].get("type"), str):
        return "event.type is not a string"
    if kind in ("view_submission", "view_closed") and not isinstance(body.get("view", {}).get("callback_id"), str):
        return "view.callback_id is not a string"
    if kind in _CALLBACK_ID_TYPES and not isinstance(body.get("callback_id"), str):
        return "callback_id is not a string"
    if kind == "block_suggestion" and not isinstance(body.get("action_id"), str):
        return "action_id is not a string"
    if kind == "block_actions" and not all(isinstance(a.get("action_id"), str) for a in body.get("actions") or []):
        return "actions[].action_id is not a string"
    if kind in _INTERACTIVE_TYPES and not (isinstance(body.get("user"), dict) and isinstance(body["user"].get("id"), str)):
        return "an interaction without the acting user"
    if "command" in body and not isinstance(body["command"], str):
        return "command is not a string"
    for name in _CONTEXT_IDS:
        value = request.context.get(name)
        if value is not None and not (isinstance(value, str) and _SLACK_ID.fullmatch(value)):
            return f"{name} is not a Slack id"
    entries = body.get("response_urls")
    if entries is not None and not (isinstance(entries, list)
                                    and all(isinstance(e, dict) and "response_url" in e for e in entries)):
        return "response_urls is not a list of objects with a response_url"
    origins = response_hosts or slack_hosts(DEFAULT_API_URL)
    # Every URL Bolt or a listener may post to: the context's (Bolt takes the first of
    # response_urls), the body's own, and each entry of response_urls (one per channel picked).
    urls = [request.context.get("response_url"), body.get("response_url")] + [e["response_url"] for e in entries or []]
    if any(url is not None and not origins.allows(url) for url in urls):
        return "response_url is not a Slack URL"
    return None


def _headers(environ: dict) -> dict[str, str]:
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = environ["CONTENT_LENGTH"]
    return headers


def create_wsgi_app(app: SlackApp) -> WebApp:
    return WebApp(app)
