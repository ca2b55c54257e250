"""Web API clients: every one points at the configured Slack base URL and retries what Slack
asks it to retry (rate limits with Retry-After, 5xx, dropped connections)."""

from __future__ import annotations

import copy
import http.client
import io
import socket
import ssl
import threading
from typing import Any, Callable, Dict, Optional
from urllib.error import HTTPError
from urllib.parse import urlsplit
from urllib.request import Request

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.web import SlackResponse

TokenRefresher = Callable[[str], Optional[str]]


def retry_handlers() -> list:
    return [
        RateLimitErrorRetryHandler(max_retry_count=3),
        ServerErrorRetryHandler(max_retry_count=2),
        ConnectionErrorRetryHandler(max_retry_count=2),
    ]


_RETRYABLE_ON_REUSED = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
_MAX_LINE = 65536
_MAX_HEADERS = 100


class ResponseHeaders(dict):
    """Response headers as sent (names keep their case, as slack_sdk hands them on), looked up
    without regard to case like `http.client.HTTPMessage`, which the retry handlers expect."""

    def __init__(self, pairs: list[tuple[str, str]]):
        super().__init__()
        self._lower: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            if key in self._lower:  # a repeated header: joined, as HTTP allows for lists
                self[self._lower[key]] += ", " + value
            else:
                self._lower[key] = name
                self[name] = value

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        original = self._lower.get(name.lower())
        return default if original is None else self[original]

    def get_content_type(self) -> str:
        return (self.get("content-type") or "text/plain").split(";", 1)[0].strip().lower()

    def get_content_charset(self, failobj: Optional[str] = None) -> Optional[str]:
        for param in (self.get("content-type") or "").split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset" and value.strip():
                return value.strip().strip('"').lower()
        return failobj


class _KeptAliveConnection:
    """One HTTP/1.1 connection to a Slack origin, reused call after call.

    http.client parses every response's headers with the email package, which costs more CPU
    than the rest of a Web API call; Slack's answers are plain HTTP/1.1 (Content-Length or
    chunked), so they are read here directly. A request goes out in one write (no Nagle stall).
    """

    def __init__(self, scheme: str, host: str, port: int, timeout: float, ssl_context: Optional[ssl.SSLContext]):
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                sock = (ssl_context or ssl.create_default_context()).wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.reader = sock.makefile("rb")
        default_port = 443 if scheme == "https" else 80
        self.host_header = host if port == default_port else f"{host}:{port}"

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def exchange(self, method: str, path: str, headers: dict[str, str], body: Optional[bytes]) -> tuple[int, str, ResponseHeaders, bytes, bool]:
        """Send one request; (status, reason, headers, body, keep_alive)."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host_header}", "Accept-Encoding: identity"]
        names = set()
        for name, value in headers.items():
            if any(c in str(name) + str(value) for c in "\r\n"):
                raise ValueError("Invalid header: line breaks are not allowed")
            names.add(name.lower())
            lines.append(f"{name}: {value}")
        if "content-length" not in names and (body is not None or method == "POST"):
            lines.append(f"Content-Length: {len(body or b'')}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))

        status_line = self.reader.readline(_MAX_LINE + 1)
        if not status_line:
            raise http.client.RemoteDisconnected("Remote end closed connection without response")
        version, _, rest = status_line.decode("latin-1").rstrip("\r\n").partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise http.client.BadStatusLine(status_line.decode("latin-1", "replace"))
        status = int(code)
        pairs: list[tuple[str, str]] = []
        while True:
            line = self.reader.readline(_MAX_LINE + 1)
            if len(line) > _MAX_LINE:
                raise http.client.LineTooLong("header line")
            if line in (b"\r\n", b"\n", b""):
                break
            if len(pairs) >= _MAX_HEADERS:
                raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                pairs.append((name.strip(), value.strip()))
        response_headers = ResponseHeaders(pairs)
        keep_alive = version == "HTTP/1.1" and (response_headers.get("connection") or "").lower() != "close"
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return status, reason, response_headers, b"", keep_alive
        if "chunked" in (response_headers.get("transfer-encoding") or "").lower():
            return status, reason, response_headers, self._read_chunked(), keep_alive
        length = response_headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                raise http.client.HTTPException("invalid Content-Length")
            size = int(length)
            data = self.reader.read(size)
            if len(data) < size:
                raise http.client.IncompleteRead(data, size - len(data))
            return status, reason, response_headers, data, keep_alive
        return status, reason, response_headers, self.reader.read(), False  # ends when the server closes

    def _read_chunked(self) -> bytes:
        parts = []
        while True:
            size_line = self.reader.readline(_MAX_LINE + 1)
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise http.client.IncompleteRead(b"".join(parts)) from None
            if size == 0:
                while self.reader.readline(_MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            chunk = self.reader.read(size)
            if len(chunk) < size:
                raise http.client.IncompleteRead(b"".join(parts) + chunk, size - len(chunk))
            parts.append(chunk)
            self.reader.readline(_MAX_LINE + 1)  # the CRLF after each chunk


class _ConnectionPool(threading.local):
    """Keep-alive connections per thread and origin.

    slack_sdk's urllib transport opens a new TCP (and TLS) connection for every call; at
    thousands of calls a minute the handshakes dominate. Each thread keeps its connections, so
    no locking is needed and a connection is never shared by two requests at once.
    """

    def __init__(self) -> None:
        self.connections: dict[tuple[str, str, int], _KeptAliveConnection] = {}


_pool = _ConnectionPool()


class TokenRefreshingWebClient(WebClient):
    """A WebClient that, when Slack answers `token_expired` for its token, refreshes the token
    through the single-flight rotation path and retries that one call once.

    The store may think a token is valid when Slack does not (clock skew, early expiry).
    """

    token_refresher: Optional[TokenRefresher] = None

    @classmethod
    def like(
        cls,
        template: WebClient,
        *,
        token: str | None = None,
        team_id: str | None = None,
        token_refresher: TokenRefresher | None = None,
    ) -> "TokenRefreshingWebClient":
        # A shallow copy of the configured template instead of a new WebClient: the constructor
        # re-reads proxy variables from the environment and rebuilds the user agent on every
        # request. Everything per-request (token, team, refresher, params) is set afresh.
        client = copy.copy(template)
        client.__class__ = cls
        client.token = token
        client.default_params = {k: v for k, v in template.default_params.items() if k != "team_id"}
        if team_id is not None:
            client.default_params["team_id"] = team_id
        client.retry_handlers = list(template.retry_handlers) if template.retry_handlers is not None else []
        client.token_refresher = token_refresher
        return client

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> Dict[str, Any]:
        """Send over a pooled keep-alive connection; same results and errors as slack_sdk's urllib path.

        Non-2xx answers raise HTTPError exactly as urlopen does, so slack_sdk's retry handlers
        (429 Retry-After, 5xx, connection errors) work unchanged.
        """
        parts = urlsplit(url)
        if self.proxy is not None or parts.scheme not in ("http", "https"):
            return super()._perform_urllib_http_request_internal(url, req)
        key = (parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = dict(req.header_items())
        for attempt in range(2):
            conn = _pool.connections.get(key)
            reused = conn is not None
            if conn is None:
                conn = _KeptAliveConnection(parts.scheme, key[1], key[2], self.timeout, self.ssl)
                _pool.connections[key] = conn
            try:
                status, reason, response_headers, body, keep_alive = conn.exchange(req.get_method(), path, headers, req.data)
            except _RETRYABLE_ON_REUSED:
                # The server closed an idle kept-alive connection before reading this request.
                conn.close()
                _pool.connections.pop(key, None)
                if reused and attempt == 0:
                    continue
                raise
            except Exception:
                conn.close()
                _pool.connections.pop(key, None)
                raise
            if not keep_alive:
                conn.close()
                _pool.connections.pop(key, None)
            if status >= 400:
                raise HTTPError(url, status, reason, response_headers, io.BytesIO(body))  # type: ignore[arg-type]
            if response_headers.get_content_type() == "application/gzip":
                return {"status": status, "headers": response_headers, "body": body}
            return {"status": status, "headers": response_headers, "body": body.decode(response_headers.get_content_charset() or "utf-8")}
        raise AssertionError("unreachable")

    def api_call(self, api_method: str, **kwargs: Any) -> SlackResponse:  # type: ignore[override]
        try:
            return super().api_call(api_method, **kwargs)
        except SlackApiError as error:
            explicit = next(
                (body["token"] for body in (kwargs.get(k) for k in ("params", "data", "json")) if body and body.get("token")),
                None,
            )
            if (
                error.response.get("error") != "token_expired"
                or self.token_refresher is None
                or self.token is None
                or (explicit is not None and explicit != self.token)
            ):
                raise
            new_token = self.token_refresher(self.token)
            if not new_token or new_token == self.token:
                raise
            self.token = new_token
            return super().api_call(api_method, **kwargs)


def build_web_client(base_url: str, token: str | None = None, timeout: int = 10) -> TokenRefreshingWebClient:
    """The app's template client; per-request clients are built like it."""
    client = TokenRefreshingWebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=retry_handlers())
    return client
