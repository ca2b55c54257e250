"""Where lazy functions run: `call_lazy_function`, the app's one touch point in Bolt's machinery
(docs/bolt-seams.md; fails loudly if a Bolt release changes either helper it calls): a lazy
function gets the arguments Bolt would give it, and its exception reaches the caller (Bolt's own
runner logs it away). Also: the lazy threads' lower CPU priority, and no lazy function for a
request answered 503."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from slack_bolt import BoltRequest

from bolt_app import database
from bolt_app.app import create_app
from bolt_app.lazy_work import call_lazy_function, lazy_only_request, lower_thread_priority
from tests.support import (answer_in_process, deliveries_table_missing, install_direct, redelivered_mention,
                           settings_for)

BODY = {"type": "event_callback", "team_id": "T1", "event_id": "Ev1",
        "event": {"type": "app_mention", "user": "U1", "channel": "C1", "ts": "1.2", "text": "hi"}}


def request() -> BoltRequest:
    req = BoltRequest(body=json.dumps(BODY), headers={"content-type": "application/json", "x-slack-retry-num": "1"})
    req.context["polls"] = "the polls service"
    return req


def test_a_lazy_function_gets_the_arguments_bolt_would_give_it() -> None:
    seen = {}

    def reply(event, body, context, request, polls) -> None:  # type: ignore[no-untyped-def]
        seen.update(event=event, body=body, team=context.team_id, retry=request.headers.get("x-slack-retry-num"),
                    polls=polls)

    call_lazy_function(reply, request(), logging.getLogger(__name__))
    assert seen == {"event": BODY["event"], "body": BODY, "team": "T1", "retry": ["1"], "polls": "the polls service"}


def test_its_exception_reaches_the_caller() -> None:
    def fails(body) -> None:  # type: ignore[no-untyped-def]
        raise LookupError(body["event_id"])

    with pytest.raises(LookupError, match="Ev1"):
        call_lazy_function(fails, request(), logging.getLogger(__name__))


def test_a_lazy_only_request_runs_only_the_named_function_with_the_same_delivery() -> None:
    original = request()
    original.lazy_function_name = "reply_to_mention"
    again = lazy_only_request(original)
    assert again.lazy_only and again.lazy_function_name == "reply_to_mention"
    assert again.body == BODY and again.headers.get("x-slack-retry-num") == ["1"]
    assert "polls" not in again.context  # nothing from the first dispatch's context


@pytest.mark.skipif(sys.platform != "linux", reason="a thread has a nice value of its own on Linux only")
@pytest.mark.parametrize("nice, lower", [(None, 10), ("0", 0), ("5", 5)])
def test_lazy_threads_run_below_the_request_threads_cpu_priority(standin, sqlite_url, nice, lower) -> None:
    env = {"BACKGROUND_NICE": nice} if nice is not None else {}
    app = create_app(settings_for(standin, sqlite_url, **env))
    executor = app.listener_runner.lazy_listener_runner.executor

    def priority() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    assert executor.submit(priority).result(timeout=10) == priority() + lower
    app.engine.dispose()


def test_a_request_answered_503_starts_no_lazy_function(standin, sqlite_url) -> None:
    # A redelivery's `ack=` step asks the database whether the first attempt replied; without the
    # database Slack is answered 503 and delivers it again. Bolt still starts the lazy functions:
    # here they wait behind busy lazy threads until the database is back, when the reply would
    # go out unchecked (and again at the next delivery).
    database.upgrade(database.create_engine(sqlite_url, pool_size=1))
    app = create_app(settings_for(standin, sqlite_url, WEB_THREADS="1"))
    ws = standin.create_workspace(name="Outage")
    install_direct(app, standin, ws.team_id)
    raw, headers = redelivered_mention(standin, ws)
    executor = app.listener_runner.lazy_listener_runner.executor
    release = threading.Event()
    busy = [executor.submit(release.wait) for _ in range(2)]  # WEB_THREADS=1: 2 lazy threads
    with deliveries_table_missing(app.engine):
        assert answer_in_process(app, raw, headers) == "503 Service Unavailable"
    release.set()
    for future in busy:
        future.result(timeout=10)
    executor.shutdown(wait=True)  # whatever was started has run
    assert standin.calls_for("chat.postMessage") == []
    app.engine.dispose()


def test_a_refused_priority_change_leaves_the_lazy_threads_working(monkeypatch, caplog) -> None:
    # An initializer that raised would break the executor: every lazy function refused.
    def refused(*args: object) -> None:
        raise PermissionError("not permitted here")

    monkeypatch.setattr(os, "setpriority", refused)
    with ThreadPoolExecutor(max_workers=1, initializer=lower_thread_priority(10)) as executor:
        assert executor.submit(lambda: "ran").result(timeout=10) == "ran"
    if sys.platform == "linux":
        assert "keep the request threads' CPU priority" in caplog.text
