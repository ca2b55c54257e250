"""`app_mention`: a short help message, in the thread, with the token Bolt resolved for this
workspace; a retried delivery of the same event (`X-Slack-Retry-Num`) posts no second reply.

Split Bolt's way into `ack=` (decide, before the answer) and `lazy=` (reply, after it), so the
answer never waits for a Web API call."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from slack_bolt import Ack, App, BoltContext, BoltRequest
from slack_sdk import WebClient

from bolt_app import lifecycle
from bolt_app.features.idempotency import Deliveries, event_key
from bolt_app.features.polls.blocks import help_text
from bolt_app.features.workspace import WorkspaceRef

logger = logging.getLogger(__name__)

# context["mention"]: what the reply step should do.
REPLY, CLAIM_THEN_REPLY, SKIP = "reply", "claim_then_reply", "skip"


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
            # Slack retries only deliveries that failed or timed out: the first attempt may
            # still be running. Claim before answering; without the database this raises, the
            # answer is 503 and Slack comes back later.
            claimed = deliveries.claim(WorkspaceRef.from_context(context), event_key(body))
            context["mention"] = REPLY if claimed else SKIP
        else:
            # A first delivery needs nothing durable before its answer; it is recorded after it,
            # so a (rare) retry of it finds the record.
            context["mention"] = CLAIM_THEN_REPLY
        ack()

    def reply(event: dict[str, Any], body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        step = context.get("mention")
        if step == CLAIM_THEN_REPLY:
            key = event_key(body)
            try:
                if not deliveries.claim(WorkspaceRef.from_context(context), key):
                    return  # a retry got here first
            except sa.exc.DBAPIError as error:
                logger.warning("Could not record mention %r (%s); answering it anyway", key, type(error).__name__)
        elif step != REPLY:
            return
        handle_app_mention(event, client)

    app.event("app_mention")(ack=decide, lazy=[reply])
    # A first delivery is answered 200 whatever happens next: with lazy processes, the web
    # worker answers it and a lazy process runs decide and reply.
    lifecycle.answer_first(app, "app_mention")
