"""Views listeners."""

from slack_bolt import App

from bolt_app.listeners.views import poll_modal


def register(app: App) -> None:
    poll_modal.register(app)
