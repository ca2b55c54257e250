"""`app_mention`: a short help message, in the thread, with the token Bolt resolved for this
workspace; a retried delivery of the same event (`X-Slack-Retry-Num`), or the reply job run again
after its queue worker was killed, posts no second reply (see features.idempotency: leases).

Split Bolt's way into `ack=` (decide, before the answer) and `lazy=` (reply, after it), so the
answer never waits for a Web API call."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext, BoltRequest
from slack_sdk import WebClient

from bolt_app import lifecycle
from bolt_app.features.idempotency import Deliveries, event_key
from bolt_app.features.polls.blocks import help_text
from bolt_app.features.workspace import WorkspaceRef

logger = logging.getLogger(__name__)


def handle_app_mention(event: dict[str, Any], client: WebClient) -> None:
    # `client` carries this workspace's token (resolved by authorize), never a global one.
    client.chat_postMessage(
        channel=event["channel"],
        thread_ts=event.get("thread_ts") or event.get("ts"),
        text=help_text(event.get("user")),
    )


def is_redelivery(request: BoltRequest) -> bool:
    return bool(request.headers.get("x-slack-retry-num"))


def register(app: App) -> None:
    deliveries: Deliveries = app.features.deliveries  # type: ignore[attr-defined]

    def decide(ack: Ack, body: dict[str, Any], context: BoltContext, request: BoltRequest) -> None:
        if is_redelivery(request):
            # Slack retries only deliveries that failed or timed out. Without the database this
            # raises, the answer is 503 and Slack comes back later, rather than a reply that no
            # lease could keep from repeating the first attempt's.
            deliveries.is_done(WorkspaceRef.from_context(context), event_key(body))
        ack()

    def reply(event: dict[str, Any], body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        # Only the body and the database decide: with a task queue this runs in a worker process,
        # where nothing the ack step put in the context arrives, and it may run more than once.
        claim = deliveries.begin(WorkspaceRef.from_context(context), event_key(body))
        if claim is None:
            return  # replied already (or another attempt is replying)
        try:
            handle_app_mention(event, client)
        except BaseException:
            deliveries.abandon(claim)  # a retry may reply
            raise
        deliveries.finish(claim)

    app.event("app_mention")(ack=decide, lazy=[reply])
    # A first delivery is answered 200 whatever happens next: with lazy processes, the web
    # worker answers it and a lazy process runs decide and reply.
    lifecycle.answer_first(app, "app_mention")
