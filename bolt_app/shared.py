"""What makes a process-wide object safe to hand to listeners through Bolt's context."""

from __future__ import annotations

from typing import Any, Optional

from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState


class SharedService:
    """A process-wide service (engine, pools, locks). Bolt deep-copies a request's context (its
    WebClient and that client's retry handlers included) for each `lazy=` function; a service is
    shared by every request, so a copy of it is the service itself."""

    def __copy__(self) -> "SharedService":
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> "SharedService":
        return self


class AnswerObserver(RetryHandler, SharedService):
    """A slack_sdk retry handler that never retries: slack_sdk shows it every answer (or
    connection error) of every call of the clients it is given to, and `observe` reads it."""

    def __init__(self) -> None:
        super().__init__(max_retry_count=0)

    def can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: Optional[HttpResponse] = None,
        error: Optional[Exception] = None,
    ) -> bool:
        self.observe(request, response)
        return False

    def observe(self, request: HttpRequest, response: Optional[HttpResponse]) -> None:
        raise NotImplementedError
