"""Actions listeners."""

from slack_bolt import App

from bolt_app.listeners.actions import poll_buttons


def register(app: App) -> None:
    poll_buttons.register(app)
