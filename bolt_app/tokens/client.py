"""Web API clients: every one points at the configured Slack base URL and retries what Slack
asks it to retry (rate limits with Retry-After, 5xx, dropped connections)."""

from __future__ import annotations

import copy
import http.client
import io
import socket
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


class _ConnectionPool(threading.local):
    """Keep-alive connections per thread and origin.

    slack_sdk's urllib transport opens a new TCP (and TLS) connection for every call; at
    thousands of calls a minute the handshakes dominate. Each thread keeps its connections, so
    no locking is needed and a connection is never shared by two requests at once.
    """

    def __init__(self) -> None:
        self.connections: dict[tuple[str, str, int], http.client.HTTPConnection] = {}


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
                if parts.scheme == "https":
                    conn = http.client.HTTPSConnection(key[1], key[2], timeout=self.timeout, context=self.ssl)
                else:
                    conn = http.client.HTTPConnection(key[1], key[2], timeout=self.timeout)
                conn.connect()
                # http.client writes headers and body separately: without this, Nagle's algorithm
                # holds the body back until the headers are acknowledged (tens of ms per call).
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                _pool.connections[key] = conn
            try:
                conn.request(req.get_method(), path, body=req.data, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
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
            if resp.will_close:
                conn.close()
                _pool.connections.pop(key, None)
            if resp.status >= 400:
                raise HTTPError(url, resp.status, resp.reason, resp.headers, io.BytesIO(body))
            charset = resp.headers.get_content_charset() or "utf-8"
            if resp.headers.get_content_type() == "application/gzip":
                return {"status": resp.status, "headers": resp.headers, "body": body}
            return {"status": resp.status, "headers": resp.headers, "body": body.decode(charset)}
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
