"""What create_app changes in Bolt's per-request work must not change which listener runs."""

from __future__ import annotations

import inspect
import re

from slack_bolt import BoltRequest, BoltResponse
from slack_bolt.kwargs_injection.utils import build_required_kwargs
from slack_bolt.listener_matcher.builtins import BuiltinListenerMatcher
from slack_bolt.middleware.attaching_conversation_kwargs import AttachingConversationKwargs

from bolt_app import database
from bolt_app.app import POOL_OVERFLOW, create_app
from bolt_app.lifecycle import INJECTED, ArgumentBuilder, BodyMatcher, LazyRunner, StreamlinedListener
from bolt_app.web import WebApp
from bolt_app.features.polls.blocks import VOTE_ACTION_PREFIX

from .support import install_direct, wait_for, wsgi_environ


def sample_requests(app, standin) -> list[BoltRequest]:  # type: ignore[no-untyped-def]
    """Payloads as the stand-in signs and sends them: events, a command, clicks, a shortcut."""
    ws = standin.create_workspace(name="Hot path")
    install_direct(app, standin, ws.team_id)
    user = standin.add_user(ws.team_id)
    with standin.capturing_requests() as captured:
        standin.send_mention(ws, text="help")
        standin.send_event(ws, {"type": "app_home_opened", "user": user, "tab": "home"})
        standin.send_event(ws, {"type": "app_uninstalled"})
        standin.send_slash_command(ws, "/poll", '"Lunch?" "Pizza" "Sushi"')
        for action_id in (f"{VOTE_ACTION_PREFIX}0", "poll_close", "not_ours"):
            standin.send_interactive(ws, {"type": "block_actions", "user": {"id": user},
                                          "actions": [{"type": "button", "action_id": action_id, "block_id": "b",
                                                       "value": "1", "action_ts": "1.000001"}]})
        standin.send_interactive(ws, {"type": "shortcut", "callback_id": "create_poll", "user": {"id": user}})
    return [BoltRequest(body=raw.decode(), headers={k.lower(): v for k, v in headers.items()})
            for raw, headers in captured]


def test_body_only_matchers_agree_with_bolts_on_every_listener(settings, standin) -> None:
    database.upgrade(database.create_engine(settings.database_url, pool_size=1))
    app = create_app(settings)
    fast = [m for listener in app._listeners for m in listener.matchers if isinstance(m, BodyMatcher)]
    assert fast, "no built-in matcher was streamlined"
    assert not [m for listener in app._listeners for m in listener.matchers
                if type(m) is BuiltinListenerMatcher and list(m.arg_names) == ["body"]]
    requests = sample_requests(app, standin)
    matched = set()
    for index, request in enumerate(requests):
        for matcher in fast:
            response = BoltResponse(status=200)
            # Bolt's own matches() on the same matcher object is the reference.
            expected = BuiltinListenerMatcher.matches(matcher, request, response)
            assert matcher.matches(request, response) == expected
            if expected:
                matched.add(index)
    # The samples exercise real matches (mention, App Home, /poll, a vote), not only misses;
    # a foreign action id matches nothing.
    assert {0, 1, 3, 4} <= matched and 6 not in matched


def test_unused_bolt_middleware_is_off_and_pools_are_sized(settings) -> None:
    app = create_app(settings)
    assert not [m for m in app._middleware_list if isinstance(m, AttachingConversationKwargs)]
    assert "AttachingFunctionToken" not in {type(m).__name__ for m in app._middleware_list}
    lazy = app.listener_runner.lazy_listener_runner
    assert isinstance(lazy, LazyRunner)
    assert lazy.executor._max_workers == 2 * settings.web_threads  # type: ignore[attr-defined]
    assert lazy.executor is not app.listener_runner.listener_executor
    # Connections per process are bounded: a worker and its lazy process stay within twice this.
    assert app.engine.pool.size() == settings.web_threads + 2
    assert app.engine.pool._max_overflow == POOL_OVERFLOW  # type: ignore[attr-defined]


def test_argument_builder_gives_every_listener_what_bolt_would(settings, standin) -> None:
    database.upgrade(database.create_engine(settings.database_url, pool_size=1))
    app = create_app(settings)
    streamlined = [listener for listener in app._listeners if isinstance(listener, StreamlinedListener)]
    assert streamlined, "no listener was streamlined"
    functions = [(listener.ack_function, listener.logger) for listener in streamlined]
    functions += [(lazy, app.listener_runner.lazy_listener_runner.logger)
                  for listener in streamlined for lazy in listener.lazy_functions]
    fast_paths = 0
    for request in sample_requests(app, standin):
        response = BoltResponse(status=200)
        for function, logger in functions:
            builder = ArgumentBuilder(function, logger)
            fast_paths += builder._getters is not None
            expected = build_required_kwargs(logger=logger, required_arg_names=list(builder.arg_names),
                                             request=request, response=response, this_func=function)
            built = builder(request, response)
            assert built.keys() == expected.keys(), function
            for name, value in built.items():
                # The same object, not an equal one: ack/say/respond are created once per request.
                assert value is expected[name], (function, name)
    assert fast_paths, "every function fell back to Bolt's builder"


def test_every_bolt_argument_has_a_streamlined_getter() -> None:
    # A Bolt upgrade that adds an injectable argument must be mirrored in INJECTED (or left to
    # the fallback); a getter for an argument Bolt no longer offers would be a silent fork.
    source = inspect.getsource(build_required_kwargs)
    offered = set(re.findall(r'^\s+"(\w+)": ', source, re.M)) - {"next", "next_", "error"}
    assert offered | {"payload"} == set(INJECTED)


def test_lazy_work_starts_after_the_answer_is_sent(settings, standin) -> None:
    database.upgrade(database.create_engine(settings.database_url, pool_size=1))
    app = create_app(settings)
    web = WebApp(app)
    ws = standin.create_workspace(name="After the answer")
    install_direct(app, standin, ws.team_id)
    with standin.capturing_requests() as captured:
        standin.send_mention(ws, text="help")
    statuses: list[str] = []
    standin.clear_calls()
    # Every lazy function starts through the runner: recording its starts tells, without waiting,
    # whether any work was handed to a thread before the answer went out.
    runner = app.listener_runner.lazy_listener_runner
    started: list[str] = []

    def start(function, request) -> None:  # type: ignore[no-untyped-def]
        started.append(function.__name__)
        type(runner).start(runner, function=function, request=request)

    runner.start = start  # type: ignore[method-assign]
    body = web(wsgi_environ(*captured[0]), lambda status, _headers: statuses.append(status))
    assert statuses == ["200 OK"] and list(body) == [b""]
    assert started == [], "the reply started before the answer was sent"
    body.close()  # what the server does once the answer is on the wire
    assert started == ["reply"]
    assert wait_for(lambda: standin.calls_for("chat.postMessage"), timeout=5)
    assert len(standin.calls_for("chat.postMessage")) == 1
