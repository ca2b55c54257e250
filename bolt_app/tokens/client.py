"""Web API clients: every one points at the configured Slack base URL and retries what Slack
asks it to retry (rate limits with Retry-After, 5xx, dropped connections)."""

from __future__ import annotations

from typing import Any, Callable, Optional

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
        client = cls(
            token=token,
            base_url=template.base_url,
            timeout=template.timeout,
            ssl=template.ssl,
            proxy=template.proxy,
            headers=template.headers,
            team_id=team_id,
            logger=template.logger,
            retry_handlers=list(template.retry_handlers) if template.retry_handlers is not None else None,
        )
        client.token_refresher = token_refresher
        return client

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
