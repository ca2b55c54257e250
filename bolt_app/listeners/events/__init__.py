"""Events API listeners."""

from slack_bolt import App

from bolt_app.listeners.events import app_home, app_mention


def register(app: App) -> None:
    app_mention.register(app)
    app_home.register(app)
