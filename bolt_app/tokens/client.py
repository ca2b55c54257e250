"""Web API clients: every one points at the configured Slack base URL and retries what Slack
asks it to retry (rate limits with Retry-After, 5xx, dropped connections).

Bolt builds each request's client like the app's (same base URL, timeout and retry handlers)
with the token authorize resolved; background work uses `TokenService.client_for`."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler

from bolt_app.telemetry.api_calls import ApiCallMetrics
from bolt_app.tokens.rejections import TokenRejections


def retry_handlers(rejections: TokenRejections | None = None) -> list[RetryHandler]:
    return [
        ApiCallMetrics(),  # first: slack_sdk stops asking at the handler that retries
        *([rejections] if rejections is not None else []),
        RateLimitErrorRetryHandler(max_retry_count=3),
        ServerErrorRetryHandler(max_retry_count=2),
        ConnectionErrorRetryHandler(max_retry_count=2),
    ]


def build_web_client(
    base_url: str, token: str | None = None, timeout: int = 10, *, rejections: TokenRejections | None = None
) -> WebClient:
    """The app's template client; Bolt copies its settings (and retry handlers, `rejections`
    among them) into every per-request client."""
    return WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=retry_handlers(rejections))
