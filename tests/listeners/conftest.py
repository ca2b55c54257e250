"""Listener tests: the real listener modules registered on a recording app, the real poll
feature on SQLite, and a fake Web API client that records calls (no HTTP)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Iterator

import pytest
from slack_bolt import BoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bolt_app import database
from bolt_app.features import build_features
from bolt_app.features.polls.updater import MessageUpdater
from bolt_app.features.workspace import WorkspaceRef

TEAM = "T0LISTEN"
WS = WorkspaceRef(None, TEAM)


class Timeline(list):
    """Acks and Web API calls in the order they happened."""


class FakeClient:
    def __init__(self, timeline: Timeline):
        self.timeline = timeline
        self.errors: dict[str, str] = {}  # method -> Slack error code to answer once

    def __getattr__(self, method: str) -> Callable[..., dict]:
        if method.startswith("_"):
            raise AttributeError(method)

        def call(**kwargs: Any) -> dict:
            self.timeline.append((method, kwargs))
            error = self.errors.pop(method, None)
            if error is not None:
                response = SlackResponse(client=None, http_verb="POST", api_url=method, req_args={},
                                         data={"ok": False, "error": error}, headers={}, status_code=200)
                raise SlackApiError(error, response)
            if method == "chat_postMessage":
                return {"ok": True, "channel": kwargs["channel"], "ts": f"1700000000.{len(self.timeline):06d}"}
            return {"ok": True}

        return call

    def of(self, method: str) -> list[dict]:
        return [kwargs for name, kwargs in self.timeline if name == method]


class Ack:
    def __init__(self, timeline: Timeline):
        self.timeline = timeline
        self.calls: list[dict] = []

    def __call__(self, text: Any = None, **kwargs: Any) -> None:
        body = dict(kwargs, **({"text": text} if text is not None else {}))
        self.calls.append(body)
        self.timeline.append(("ack", body))


class RecordingApp:
    """Stands in for the Bolt app in `register(app)`: keeps each listener by what it matches."""

    def __init__(self, features: Any):
        self.features = features
        # What FeaturesMiddleware puts in every request's context.
        self.services = {field.name: getattr(features, field.name) for field in dataclasses.fields(features)}
        self.handlers: dict[tuple[str, str], Callable[..., Any]] = {}

    def _on(self, kind: str, key: Any) -> Callable[..., Any]:
        def decorate(function: Callable[..., Any] | None = None, *, ack: Callable[..., Any] | None = None,
                     lazy: list[Callable[..., Any]] | None = None) -> Callable[..., Any]:
            # A plain listener, or Bolt's `ack=` / `lazy=` form: the ack function, then each lazy
            # one, each with the keyword arguments it asks for (as Bolt injects them).
            steps = [function] if function is not None else [ack, *(lazy or [])]

            def fn(**kwargs: Any) -> None:
                available = {**self.services, **kwargs}
                for step in steps:
                    wanted = inspect.signature(step).parameters
                    step(**{k: v for k, v in available.items() if k in wanted})

            self.handlers[(kind, getattr(key, "pattern", key))] = fn
            return fn

        return decorate

    def __getattr__(self, kind: str) -> Callable[[Any], Any]:
        if kind in ("command", "event", "action", "view_submission", "global_shortcut", "message_shortcut"):
            return lambda key: self._on(kind, key)
        raise AttributeError(kind)


@pytest.fixture
def features(sqlite_url) -> Iterator[Any]:
    engine = database.create_engine(sqlite_url, pool_size=5)
    database.upgrade(engine)
    built = build_features(engine)
    built.polls.updater = MessageUpdater()  # senders run in the calling thread: no waiting in tests
    built.polls.responder = lambda url, payload: built.polls.responses.append((url, payload))  # type: ignore[attr-defined]
    built.polls.responses = []  # type: ignore[attr-defined]
    yield built
    engine.dispose()


@pytest.fixture
def timeline() -> Timeline:
    return Timeline()


@pytest.fixture
def client(timeline) -> FakeClient:
    return FakeClient(timeline)


@pytest.fixture
def ack(timeline) -> Ack:
    return Ack(timeline)


@pytest.fixture
def context() -> BoltContext:
    return BoltContext({"enterprise_id": None, "team_id": TEAM, "is_enterprise_install": False})


@pytest.fixture
def app(features) -> RecordingApp:
    from bolt_app.listeners import register_listeners

    recording = RecordingApp(features)
    register_listeners(recording)  # type: ignore[arg-type]
    return recording


def acked_first(timeline: Timeline) -> bool:
    return bool(timeline) and timeline[0][0] == "ack"
