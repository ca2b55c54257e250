"""Every Web API answer, counted by method and outcome.

`ApiCallMetrics` is a slack_sdk retry handler (its public `can_retry`) placed first in every
client's `retry_handlers` (bolt_app/tokens/client.py): slack_sdk asks the handlers in order after
each HTTP answer or connection error, so the first one hears every attempt, retries included. It
never retries. Outcomes: `ok`, Slack's error code (`channel_not_found`, …), `http_429` (with
its Retry-After observed), `http_<status>` for other HTTP errors, `connection_error`. Posts to a
response_url (slack_sdk's WebhookClient, same handlers) are counted as method `webhook`.
"""

from __future__ import annotations

from typing import Optional

from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse

from bolt_app.shared import AnswerObserver
from bolt_app.telemetry import labels, metrics


class ApiCallMetrics(AnswerObserver):
    def observe(self, request: HttpRequest, response: Optional[HttpResponse]) -> None:
        try:
            method = labels.api_method(request.url)
            retry_after = None
            if response is None:
                outcome = "connection_error"
            elif response.status_code == 200 and method == labels.WEBHOOK:
                outcome = "ok"  # a response_url answers plain "ok"
            elif response.status_code == 200:
                body = response.body if isinstance(response.body, dict) else {}
                outcome = "ok" if body.get("ok") is True else labels.api_error(body.get("error"))
            else:
                outcome = labels.http_outcome(response.status_code)
                if response.status_code == 429:
                    retry_after = retry_after_seconds(response.headers)
            metrics.api_call(method, outcome, retry_after)
        except Exception:  # noqa: BLE001 - counting must never break a Web API call
            pass


def retry_after_seconds(headers: dict) -> Optional[float]:
    for name, values in (headers or {}).items():
        if name.lower() == "retry-after":
            value = values[0] if isinstance(values, (list, tuple)) and values else values
            try:
                return max(float(value), 0.0)
            except (TypeError, ValueError):
                return None
    return None
