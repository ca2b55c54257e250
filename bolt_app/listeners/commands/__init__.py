"""Commands listeners."""

from slack_bolt import App

from bolt_app.listeners.commands import poll


def register(app: App) -> None:
    poll.register(app)
