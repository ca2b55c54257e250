"""`app_home_opened`: publish the user's polls and a "Create poll" button on the Home tab."""

from __future__ import annotations

from typing import Any

from slack_bolt import App, BoltContext

from bolt_app.features.polls import PollsFeature
from bolt_app.features.workspace import WorkspaceRef
from bolt_app.listeners.common import acknowledge


def handle_app_home_opened(polls: PollsFeature, event: dict[str, Any], client: Any, context: BoltContext) -> None:
    if event.get("tab", "home") != "home" or not event.get("user"):
        return
    polls.publish_home(client, WorkspaceRef.from_context(context), event["user"])


def register(app: App) -> None:
    # The Home tab is rendered after the answer (a database read and a views.publish call).
    app.event("app_home_opened")(ack=acknowledge, lazy=[handle_app_home_opened])
