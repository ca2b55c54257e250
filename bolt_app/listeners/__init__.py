"""Listeners, grouped by Slack surface. Each surface module exposes `register(app)`."""

from slack_bolt import App

from bolt_app.listeners import actions, commands, events, shortcuts, views


def register_listeners(app: App) -> None:
    for surface in (events, commands, actions, views, shortcuts):
        surface.register(app)
