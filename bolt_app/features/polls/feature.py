"""Polls on Slack: the domain, its Block Kit and the Web API calls, for the thin listeners.

Every method takes the per-request `client` Bolt built for the workspace (its token, and
slack_sdk's retry handlers for 429, 5xx and dropped connections) and the `WorkspaceRef`
Bolt resolved. Nothing here acknowledges: listeners ack first, then call in.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional

import sqlalchemy as sa
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.webhook import WebhookClient
from sqlalchemy.engine import Engine

from bolt_app.features.idempotency import Deliveries
from bolt_app.features.polls import blocks
from bolt_app.features.polls.domain import (
    CloseOutcome,
    Draft,
    Poll,
    PollResults,
    PollService,
    VoteOutcome,
)
from bolt_app.features.polls.updater import MessageUpdater, Snapshot
from bolt_app.features.workspace import WorkspaceRef
from bolt_app.shared import SharedService
from bolt_app.manifest import load_manifest
from bolt_app.tokens.client import retry_handlers

logger = logging.getLogger(__name__)

# chat.postMessage errors that mean "invite the app to the channel first".
NOT_IN_CHANNEL_ERRORS = frozenset({"not_in_channel", "channel_not_found"})
HOME_OPEN_POLLS = 20
# Threads sending coalesced chat.update per process: one per poll being updated, at most this many.
UPDATE_THREADS = 4
HOME_CLOSED_POLLS = 5

Responder = Callable[[str, dict[str, Any]], None]


def post_to_response_url(url: str, payload: dict[str, Any]) -> None:
    """POST to a response_url with the same retry handlers as every Web API client."""
    response = WebhookClient(url, timeout=10, retry_handlers=retry_handlers()).send_dict(payload)
    if response.status_code != 200:
        logger.warning("response_url answered %s", response.status_code)


def bot_display_name() -> str:
    manifest = load_manifest()
    bot = (manifest.get("features") or {}).get("bot_user") or {}
    return str(bot.get("display_name") or (manifest.get("display_information") or {}).get("name") or "the app")


class PollsFeature(SharedService):
    def __init__(
        self,
        engine: Engine,
        deliveries: Deliveries,
        *,
        updater: Optional[MessageUpdater] = None,
        responder: Responder = post_to_response_url,
        bot_name: Optional[str] = None,
    ):
        self.service = PollService(engine, deliveries)
        self.updater = updater or MessageUpdater(
            executor=ThreadPoolExecutor(max_workers=UPDATE_THREADS, thread_name_prefix="poll-update")
        )
        self.responder = responder
        self.bot_name = bot_name or bot_display_name()

    # ------------------------------------------------------------------ creating

    def open_modal(self, client: Any, trigger_id: str, *, question: str = "", channel_id: Optional[str] = None) -> None:
        client.views_open(trigger_id=trigger_id, view=blocks.poll_modal(question=question, channel_id=channel_id))

    def post_new_poll(
        self,
        client: Any,
        ws: WorkspaceRef,
        *,
        creator_id: str,
        channel_id: str,
        draft: Draft,
        delivery_key: Optional[str],
        response_url: Optional[str],
    ) -> Optional[Poll]:
        """Store the poll, post its message, link the two. On failure nothing is left behind
        and the creator is told what to do. None for a duplicate delivery or a failure."""
        poll = self.service.create(ws, creator_id=creator_id, channel_id=channel_id, draft=draft, delivery_key=delivery_key)
        if poll is None:
            logger.info("Duplicate delivery %s: the poll was already created", delivery_key and delivery_key.split(":")[0])
            return None
        empty = PollResults(poll, tuple(() for _ in poll.options))
        try:
            posted = client.chat_postMessage(channel=channel_id, **blocks.poll_message(empty))
        except (SlackApiError, SlackClientError, OSError) as error:
            self.service.discard(ws, poll.poll_id)
            code = error.response.get("error") if isinstance(error, SlackApiError) else type(error).__name__
            if code in NOT_IN_CHANNEL_ERRORS:
                text = blocks.not_in_channel_text(channel_id, self.bot_name)
            else:
                logger.warning("Posting a poll failed: %s", code)
                text = blocks.post_failed_text(str(code))
            self.tell_creator(client, user_id=creator_id, channel_id=channel_id, response_url=response_url, text=text)
            return None
        revision = self.service.attach_message(ws, poll.poll_id, posted["channel"], posted["ts"])
        if revision:  # a click beat us to recording the message: show it
            self.refresh(client, ws, poll.poll_id)
        return poll

    def tell_creator(
        self, client: Any, *, user_id: str, channel_id: str, response_url: Optional[str], text: str
    ) -> None:
        """An ephemeral note to the user in the channel, through the response_url of their command
        or modal: that works even where the app is not a member (chat.postEphemeral would not)."""
        if not response_url:  # Slack always sends one for commands and for the modal's channel select
            self.ephemeral(client, channel_id, user_id, text)
            return
        try:
            self.responder(response_url, {"response_type": "ephemeral", "replace_original": False, "text": text})
        except (SlackClientError, OSError) as error:
            logger.warning("Could not tell the user why the poll was not posted: %s", type(error).__name__)

    # ------------------------------------------------------------------ voting and closing

    def vote(
        self,
        client: Any,
        ws: WorkspaceRef,
        *,
        poll_id: str,
        position: int,
        user_id: str,
        channel_id: Optional[str],
        delivery_key: Optional[str],
    ) -> Optional[VoteOutcome]:
        """Record the click, then refresh the message or tell the user why nothing changed."""
        try:
            result = self.service.vote(ws, poll_id, position, user_id, delivery_key=delivery_key)
        except sa.exc.DBAPIError as error:
            # Already acknowledged, so Slack will not resend: tell the user to click again.
            logger.error("Recording a vote failed: %s", type(error).__name__)
            self.ephemeral(client, channel_id, user_id, blocks.VOTE_FAILED)
            return None
        if result.outcome is VoteOutcome.NOT_FOUND:
            self.ephemeral(client, channel_id, user_id, blocks.POLL_NOT_FOUND)
        elif result.outcome is VoteOutcome.CLOSED:
            self.ephemeral(client, channel_id, user_id, blocks.POLL_CLOSED)
        if result.changed or result.outcome is VoteOutcome.CLOSED:
            # (a click on a closed poll means the message still shows buttons: show it closed)
            self.refresh(client, ws, poll_id)
        return result.outcome

    def close(self, client: Any, ws: WorkspaceRef, *, poll_id: str, user_id: str, channel_id: Optional[str]) -> CloseOutcome:
        outcome = self.service.close(ws, poll_id, user_id)
        if outcome in (CloseOutcome.CLOSED, CloseOutcome.ALREADY_CLOSED):
            self.refresh(client, ws, poll_id)
        elif outcome is CloseOutcome.NOT_CREATOR:
            self.ephemeral(client, channel_id, user_id, blocks.NOT_CREATOR)
        elif outcome is CloseOutcome.NOT_FOUND:
            self.ephemeral(client, channel_id, user_id, blocks.POLL_NOT_FOUND)
        return outcome

    def ephemeral(self, client: Any, channel_id: Optional[str], user_id: str, text: str) -> None:
        if not channel_id:
            return
        try:
            client.chat_postEphemeral(channel=channel_id, user=user_id, text=text)
        except SlackApiError as error:
            logger.warning("Ephemeral message failed: %s", error.response.get("error"))
        except (SlackClientError, OSError) as error:
            logger.warning("Ephemeral message failed: %s", type(error).__name__)

    # ------------------------------------------------------------------ message updates

    def refresh(self, client: Any, ws: WorkspaceRef, poll_id: str) -> None:
        """Make the poll's message show the current results (coalesced; see updater.py)."""
        self.updater.request(
            (ws.key, poll_id),
            client,
            render=lambda: self.snapshot(ws, poll_id),
            revision=lambda: self.service.revision(ws, poll_id),
        )

    def snapshot(self, ws: WorkspaceRef, poll_id: str) -> Optional[Snapshot]:
        results = self.service.results(ws, poll_id)
        if results is None or results.poll.message_ts is None:
            return None
        poll = results.poll
        return Snapshot(poll.revision, poll.channel_id, poll.message_ts, blocks.poll_message(results))

    # ------------------------------------------------------------------ App Home

    def publish_home(self, client: Any, ws: WorkspaceRef, user_id: str) -> None:
        open_polls, closed = self.service.polls_of(
            ws, user_id, open_limit=HOME_OPEN_POLLS, closed_limit=HOME_CLOSED_POLLS
        )
        open_total = self.service.count_open(ws, user_id) if len(open_polls) == HOME_OPEN_POLLS else len(open_polls)
        client.views_publish(user_id=user_id, view=blocks.home_view(user_id, open_polls, closed, open_total=open_total))
