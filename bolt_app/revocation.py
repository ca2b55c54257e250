"""Uninstall and token revocation: `app_uninstalled` / `tokens_revoked` are handled before the
acknowledgement, in a global middleware (in place of `app.enable_token_revocation_listeners()`).

A database failure raises, the app's error handler answers 503 and Slack redelivers: an
uninstalled workspace's tokens and data are never kept because the answer went out first. The
deletes are idempotent, so a redelivery is harmless. Org-wide installs are keyed by
`context.is_enterprise_install` (Bolt's stock listeners pass `context.team_id`, which names the
org-wide install only when Slack sends `team_id: null` in the authorizations).

Other processes learn of it from the database, not from their caches: every request's client is
an `InstalledOnlyClient` (`InstalledOnlyClients` below), which checks before each Web API call
that the installation still holds the token, and feature writes hold the installation row
(tokens/installed.py; docs/decisions/0002-uninstall-across-processes.md).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from slack_bolt import App, BoltContext, BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware

from bolt_app.features.idempotency import delivery_row, insert_ignore, processed_deliveries
from bolt_app.features.workspace import WorkspaceRef
from bolt_app.storage.installation_store import InstallationStore
from bolt_app.tokens.authorize import INSTALLATION_IS_ORG_WIDE
from bolt_app.tokens.installed import InstalledOnlyClient, InstalledTokens
from bolt_app.telemetry import metrics

logger = logging.getLogger(__name__)

REVOCATION_EVENTS = frozenset({"app_uninstalled", "tokens_revoked"})


def revocation_event(body: Any) -> dict | None:
    """The event when `body` is an app_uninstalled / tokens_revoked event callback, else None."""
    if not isinstance(body, dict) or body.get("type") != "event_callback":
        return None
    event = body.get("event")
    if isinstance(event, dict) and event.get("type") in REVOCATION_EVENTS:
        return event
    return None


# processed_deliveries rows of revocation events: one key for all (no workspace key looks like it,
# so an uninstall's deletion hook never removes the row that says it was applied).
REVOCATIONS_KEY = "revocations"


def _revocation_sent_at(body: Any) -> Optional[int]:
    """The envelope's `event_time` (epoch seconds, inside the signed body), when it is one."""
    sent_at = body.get("event_time") if isinstance(body, dict) else None
    return sent_at if type(sent_at) is int and sent_at > 0 else None


def _revocation_claim(body: Any) -> Optional[Callable[[Any], bool]]:
    """Claims the delivery's `event_id` in the revoking transaction (False: applied before)."""
    event_id = body.get("event_id") if isinstance(body, dict) else None
    if not isinstance(event_id, str) or not event_id:
        return None
    row = delivery_row(REVOCATIONS_KEY, f"revocation:{event_id}")
    return lambda conn: insert_ignore(conn, processed_deliveries, row)


def handle_revocation(store: InstallationStore, event: dict, context: BoltContext, body: Any = None) -> None:
    """Delete what an app_uninstalled / tokens_revoked event revokes, once per `event_id`, and
    never what was installed after the event was sent (`event_time`): the same signed bytes
    replayed within the signature window after a reinstall leave the new installation alone."""
    enterprise_id = context.enterprise_id
    team_id = None if context.is_enterprise_install else context.team_id
    if enterprise_id is None and team_id is None:
        logger.warning("%r event without a workspace or enterprise id: nothing to delete", event.get("type"))
        return
    sent_at, claim = _revocation_sent_at(body), _revocation_claim(body)
    if event["type"] == "app_uninstalled":
        if store.revoke(enterprise_id=enterprise_id, team_id=team_id, uninstall=True, sent_at=sent_at, claim=claim):
            metrics.uninstalled()
            logger.info("Uninstalled from enterprise_id=%r team_id=%r: tokens and data deleted", enterprise_id, team_id)
        else:
            logger.info("app_uninstalled for enterprise_id=%r team_id=%r ignored: a repeat, or older than the "
                        "installation", enterprise_id, team_id)
        return
    tokens = event.get("tokens") if isinstance(event.get("tokens"), dict) else {}
    user_ids = [u for u in (tokens.get("oauth") or []) if isinstance(u, str) and u]
    bots = [b for b in (tokens.get("bot") or []) if isinstance(b, str) and b]
    changed = store.revoke(enterprise_id=enterprise_id, team_id=team_id, user_ids=user_ids, bot=bool(bots),
                           sent_at=sent_at, claim=claim)
    if changed:
        metrics.tokens_revoked(bot=1 if bots else 0, user=len(user_ids))
    logger.info(
        "Tokens revoked in enterprise_id=%r team_id=%r: %d user token(s)%s%s",
        enterprise_id,
        team_id,
        len(user_ids),
        " and the bot token" if bots else "",
        " deleted" if changed else ": nothing deleted (a repeat, already gone, or older than the installation)",
    )


class RevocationMiddleware(Middleware):
    """Handles app_uninstalled / tokens_revoked before any acknowledgement; every other request
    passes straight through (a plain `Middleware`: no per-request argument injection)."""

    def __init__(self, store: InstallationStore):
        self.store = store

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> Optional[BoltResponse]:  # noqa: A002
        event = revocation_event(req.body)
        if event is None:
            return next()
        handle_revocation(self.store, event, req.context, req.body)
        return BoltResponse(status=200, body="")


class InstalledOnlyClients(Middleware):
    """After authorize: the request's client becomes an `InstalledOnlyClient` for the installation
    authorize resolved, so every call made for this request (in its `ack=` step, its `lazy=`
    functions, the poll message updates they start) is checked against the database first."""

    def __init__(self, installed: InstalledTokens):
        self.installed = installed

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> Optional[BoltResponse]:  # noqa: A002
        result = req.context.authorize_result
        if result is not None and INSTALLATION_IS_ORG_WIDE in result:  # resolved by StoreAuthorize
            key = WorkspaceRef.from_context(req.context).key
            owners = {}
            if result.bot_token:
                owners[result.bot_token] = (key, None)
            if result.user_token:
                owners[result.user_token] = (key, result.user_id)
            req.context["client"] = InstalledOnlyClient.like(req.context.client, installed=self.installed,
                                                             owners=owners)
            req.context.pop("say", None)  # Bolt builds `say` from the client on first use
        return next()


def register(app: App, store: InstallationStore) -> None:
    """Handle app_uninstalled and tokens_revoked before the acknowledgement (replaces
    `app.enable_token_revocation_listeners()`); a database failure raises → 503 → Slack retries."""
    app.use(RevocationMiddleware(store))
