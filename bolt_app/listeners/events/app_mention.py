"""`app_mention`: a short help message, in the thread, with the token Bolt resolved for this
workspace; a retried delivery of the same event (`X-Slack-Retry-Num`), or the reply job run again
after its queue worker was killed, posts no second reply (see features.idempotency: leases).

Split Bolt's way into `ack=` (before the answer) and `lazy=` (the reply, after it), so the answer
never waits for a Web API call. The reply depends only on the request body and the database:
in queue mode it runs in `python main.py worker`, where nothing from the `ack=` step is known.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext, BoltRequest
from slack_sdk import WebClient

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


def acknowledge_mention(ack: Ack, body: dict[str, Any], request: BoltRequest, context: BoltContext,
                        deliveries: Deliveries) -> None:
    if is_redelivery(request):
        # Slack redelivers what failed or timed out; the first attempt may have replied. Answer
        # once the database can tell (without it this raises → 503, and Slack comes back later),
        # so an outage never turns into a duplicate reply.
        deliveries.is_done(WorkspaceRef.from_context(context), event_key(body))
    ack()


def reply_to_mention(
    event: dict[str, Any], body: dict[str, Any], client: WebClient, context: BoltContext, request: BoltRequest,
    deliveries: Deliveries,
) -> None:
    # Only the body and the database decide: with a task queue this runs in a worker process,
    # where nothing the ack step put in the context arrives, and it may run more than once.
    # A redelivery is never replied to unrecorded: the first attempt may have replied. (Its lazy
    # function starts only once the `ack=` step found it not done: bolt_app/lazy_work.py.)
    claim = deliveries.begin(WorkspaceRef.from_context(context), event_key(body), must_record=is_redelivery(request))
    if claim is None:
        return  # replied already (or another attempt is replying)
    try:
        handle_app_mention(event, client)
    except BaseException:
        deliveries.abandon(claim)  # a retry may reply
        raise
    deliveries.finish(claim)


def register(app: App) -> None:
    app.event("app_mention")(ack=acknowledge_mention, lazy=[reply_to_mention])
