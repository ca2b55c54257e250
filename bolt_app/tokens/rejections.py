"""Slack's word that a token no longer works, heard on every Web API call the app makes.

`TokenRejections` is one of the app client's retry handlers (slack_sdk's public `RetryHandler`
interface), so Bolt copies it into every per-request client. It never retries: it reads each
answer, and when Slack says `token_expired`, `token_revoked`, `invalid_auth` or
`account_inactive` for a token the app resolved, it tells whoever listens (authorize: drop the
cached entry; for `token_expired`, refresh it through the single-flight rotation path)."""

from __future__ import annotations

from typing import Callable, Optional

from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse

from bolt_app.shared import AnswerObserver

REJECTING_ERRORS = frozenset({"token_expired", "token_revoked", "invalid_auth", "account_inactive"})
TokenRejected = Callable[[str, str], None]  # (token, Slack's error code)


class TokenRejections(AnswerObserver):
    def __init__(self) -> None:
        super().__init__()
        self.listeners: list[TokenRejected] = []

    def observe(self, request: HttpRequest, response: Optional[HttpResponse]) -> None:
        body = response.body if response is not None else None
        code = body.get("error") if isinstance(body, dict) and body.get("ok") is False else None
        if code in REJECTING_ERRORS:
            token = bearer_token(request.headers)
            if token:
                for listener in self.listeners:
                    listener(token, code)


def bearer_token(headers: dict) -> Optional[str]:
    for name, values in headers.items():
        if name.lower() == "authorization":
            value = values[0] if isinstance(values, list) else values
            if isinstance(value, str) and value.startswith("Bearer "):
                return value[len("Bearer "):]
    return None
