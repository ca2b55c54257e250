"""`app_home_opened`: publish the user's polls and a "Create poll" button on the Home tab."""

from __future__ import annotations

from typing import Any

from slack_bolt import App, BoltContext

from bolt_app.features.polls import PollsFeature
from bolt_app.features.workspace import WorkspaceRef


def handle_app_home_opened(polls: PollsFeature, event: dict[str, Any], client: Any, context: BoltContext) -> None:
    # Events are acknowledged by Bolt before listeners run.
    if event.get("tab", "home") != "home" or not event.get("user"):
        return
    polls.publish_home(client, WorkspaceRef.from_context(context), event["user"])


def register(app: App) -> None:
    polls: PollsFeature = app.features.polls  # type: ignore[attr-defined]

    def app_home_opened(event: dict[str, Any], client: Any, context: BoltContext) -> None:
        handle_app_home_opened(polls, event, client, context)

    app.event("app_home_opened")(app_home_opened)
