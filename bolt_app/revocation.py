"""Uninstall and token revocation: `app_uninstalled` / `tokens_revoked` are handled before the
acknowledgement, in a global middleware (in place of `app.enable_token_revocation_listeners()`).

A database failure raises, the app's error handler answers 503 and Slack redelivers: an
uninstalled workspace's tokens and data are never kept because the answer went out first. The
deletes are idempotent, so a redelivery is harmless. Org-wide installs are keyed by
`context.is_enterprise_install` (Bolt's stock listeners pass `context.team_id`, which names the
org-wide install only when Slack sends `team_id: null` in the authorizations).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from slack_bolt import App, BoltContext, BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware

from bolt_app.storage.installation_store import InstallationStore
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


def handle_revocation(store: InstallationStore, event: dict, context: BoltContext) -> None:
    enterprise_id = context.enterprise_id
    team_id = None if context.is_enterprise_install else context.team_id
    if enterprise_id is None and team_id is None:
        logger.warning("%s event without a workspace or enterprise id: nothing to delete", event.get("type"))
        return
    if event["type"] == "app_uninstalled":
        store.delete_all(enterprise_id=enterprise_id, team_id=team_id)
        metrics.uninstalled()
        logger.info("Uninstalled from enterprise_id=%s team_id=%s: tokens and data deleted", enterprise_id, team_id)
        return
    tokens = event.get("tokens") if isinstance(event.get("tokens"), dict) else {}
    user_ids = [u for u in (tokens.get("oauth") or []) if isinstance(u, str) and u]
    for user_id in user_ids:
        store.delete_installation(enterprise_id=enterprise_id, team_id=team_id, user_id=user_id)
    bots = [b for b in (tokens.get("bot") or []) if isinstance(b, str) and b]
    if bots:
        store.delete_bot(enterprise_id=enterprise_id, team_id=team_id)
    metrics.tokens_revoked(bot=1 if bots else 0, user=len(user_ids))
    logger.info(
        "Tokens revoked in enterprise_id=%s team_id=%s: %d user token(s)%s deleted",
        enterprise_id,
        team_id,
        len(user_ids),
        " and the bot token" if bots else "",
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
        handle_revocation(self.store, event, req.context)
        return BoltResponse(status=200, body="")


def register(app: App, store: InstallationStore) -> None:
    """Handle app_uninstalled and tokens_revoked before the acknowledgement (replaces
    `app.enable_token_revocation_listeners()`); a database failure raises → 503 → Slack retries."""
    app.use(RevocationMiddleware(store))
