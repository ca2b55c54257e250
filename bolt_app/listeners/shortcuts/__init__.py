"""Shortcuts listeners."""

from slack_bolt import App

from bolt_app.listeners.shortcuts import poll


def register(app: App) -> None:
    poll.register(app)
