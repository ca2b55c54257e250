"""`lazy=` functions in lazy processes: the reply is made by a child process with what the ack
step decided; a full or dead child hands the work back to the web worker's threads; shutdown
waits for the jobs a child holds, and so does a child whose worker died."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from slack_bolt import BoltContext, BoltRequest

from bolt_app import database, lazy_processes
from bolt_app.app import create_app
from bolt_app.lazy_processes import LazyProcessPool, job_for
from bolt_app.lifecycle import ACK_ADDED
from bolt_app.storage.tables import workspace_key
from bolt_app.web import WebApp

from .support import PROJECT_ROOT, base_env, install_direct, wait_for, wsgi_environ


@pytest.fixture
def served(settings, standin):  # type: ignore[no-untyped-def]
    """An app whose lazy functions go to one lazy process, and a function that answers a
    captured request through the WSGI layer as gunicorn would (body closed after the answer)."""
    database.upgrade(database.create_engine(settings.database_url, pool_size=1))
    app = create_app(settings)
    web = WebApp(app)
    ws = standin.create_workspace(name="Lazy processes")
    install_direct(app, standin, ws.team_id)
    pools: list[LazyProcessPool] = []

    def start_pool(backlog: int = lazy_processes.BACKLOG_PER_PROCESS, answer_first: bool = False) -> LazyProcessPool:
        pool = LazyProcessPool(settings, processes=1, threads=4, backlog=backlog).start()
        app._listener_runner.lazy_listener_runner = lazy_processes.ProcessLazyRunner(
            pool, app._listener_runner.lazy_listener_runner
        )
        if answer_first:  # as lazy_processes.attach does for the server
            app.lazy_pool = pool
        pools.append(pool)
        assert wait_for(lambda: pool.children[0].accepting, timeout=30), "the lazy process did not get ready"
        return pool

    def answer(raw: bytes, headers: dict[str, str], **extra: str) -> list[str]:
        statuses: list[str] = []
        body = web(wsgi_environ(raw, {**headers, **extra}), lambda status, _h: statuses.append(status))
        list(body)
        if hasattr(body, "close"):  # PEP 3333: the server calls it once the body is sent
            body.close()
        return statuses

    yield app, ws, start_pool, answer
    for pool in pools:
        pool.close(timeout=10)


def captured_mentions(standin, ws, count: int) -> list[tuple[bytes, dict[str, str]]]:  # type: ignore[no-untyped-def]
    with standin.capturing_requests() as captured:
        for n in range(count):
            standin.send_mention(ws, text=f"help {n}")
    return list(captured)


def replies(standin) -> int:  # type: ignore[no-untyped-def]
    return len(standin.calls_for("chat.postMessage"))


def test_the_reply_is_made_by_the_lazy_process_with_the_ack_steps_decision(served, standin) -> None:
    _app, ws, start_pool, answer = served
    pool = start_pool()
    (raw, headers), = captured_mentions(standin, ws, 1)
    standin.clear_calls()
    assert answer(raw, headers) == ["200 OK"]
    # The reply function returns without posting unless context["mention"] arrived with the job.
    assert wait_for(lambda: replies(standin) == 1, timeout=20)
    assert (pool.handed_over, pool.ran_here) == (1, 0)
    call = standin.calls_for("chat.postMessage")[0]
    assert call.params["thread_ts"]  # answered in the mention's thread


def test_redeliveries_handed_to_the_lazy_process_reply_once(served, standin) -> None:
    _app, ws, start_pool, answer = served
    pool = start_pool()
    (raw, headers), = captured_mentions(standin, ws, 1)
    standin.clear_calls()
    # Slack's retries: each claims before its answer and tells the lazy process to reply or skip.
    for retry in ("1", "2", "3"):
        assert answer(raw, headers, **{"X-Slack-Retry-Num": retry, "X-Slack-Retry-Reason": "http_timeout"}) == ["200 OK"]
    assert wait_for(lambda: pool.handed_over == 3 and pool.children[0].held() == 0, timeout=20)
    assert replies(standin) == 1


def test_a_full_lazy_process_hands_the_work_back_to_the_web_workers_threads(served, standin, caplog) -> None:
    _app, ws, start_pool, answer = served
    pool = start_pool(backlog=1)
    mentions = captured_mentions(standin, ws, 3)
    standin.clear_calls()
    standin.latency_seconds = 1.0  # the first job holds the child's only slot
    with caplog.at_level(logging.WARNING, logger="bolt_app.lazy_processes"):
        for raw, headers in mentions:
            assert answer(raw, headers) == ["200 OK"]
    assert (pool.handed_over, pool.ran_here) == (1, 2)
    assert len([r for r in caplog.records if "Lazy processes full" in r.getMessage()]) == 1  # not once per job
    assert wait_for(lambda: replies(standin) == 3, timeout=20), "a job was dropped"


def test_a_dead_lazy_process_is_replaced_and_nothing_meanwhile_is_lost(served, standin, monkeypatch, caplog) -> None:
    _app, ws, start_pool, answer = served
    monkeypatch.setattr(lazy_processes, "RESTART_BACKOFF_SECONDS", 0.0)
    pool = start_pool()
    first = pool.children[0]
    mentions = captured_mentions(standin, ws, 2)
    standin.clear_calls()
    caplog.set_level(logging.ERROR, logger="bolt_app.lazy_processes")
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.join(10)
    assert answer(*mentions[0]) == ["200 OK"]
    assert pool.ran_here == 1  # the dead child got no job, whether or not the watcher noticed yet
    assert wait_for(lambda: pool.restarts == 1 and pool.children[0].accepting, timeout=30)
    replacement = pool.children[0]
    assert replacement is not first and replacement.process.pid != first.process.pid
    handed_before = pool.handed_over
    assert answer(*mentions[1]) == ["200 OK"]
    assert pool.handed_over == handed_before + 1
    assert wait_for(lambda: replies(standin) == 2, timeout=20)
    assert any("exited with code -9" in r.getMessage() for r in caplog.records)


def test_close_waits_for_the_jobs_a_lazy_process_holds(served, standin) -> None:
    _app, ws, start_pool, answer = served
    pool = start_pool()
    mentions = captured_mentions(standin, ws, 5)
    standin.clear_calls()
    standin.latency_seconds = 0.5
    for raw, headers in mentions:
        answer(raw, headers)
    assert pool.handed_over == 5 and replies(standin) < 5
    child = pool.children[0]
    pool.close(timeout=20)
    assert replies(standin) == 5
    assert child.process.exitcode == 0


def test_a_first_delivery_is_answered_at_once_and_dispatched_by_the_lazy_process(served, standin) -> None:
    app, ws, start_pool, answer = served
    pool = start_pool(answer_first=True)
    mentions = captured_mentions(standin, ws, 2)
    standin.clear_calls()
    for raw, headers in mentions:
        assert answer(raw, headers) == ["200 OK"]
    assert (pool.answered_first, pool.handed_over, pool.ran_here) == (2, 0, 0)
    assert wait_for(lambda: replies(standin) == 2, timeout=20)
    # The lazy process ran the whole listener: ack step, then the reply, which claimed the event.
    with app.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM processed_deliveries")).scalar() == 2
    assert all(call.params["thread_ts"] for call in standin.calls_for("chat.postMessage"))


def test_redeliveries_are_dispatched_before_their_answer_and_reply_once(served, standin) -> None:
    _app, ws, start_pool, answer = served
    pool = start_pool(answer_first=True)
    (raw, headers), = captured_mentions(standin, ws, 1)
    standin.clear_calls()
    assert answer(raw, headers) == ["200 OK"]
    for retry in ("1", "2"):
        assert answer(raw, headers, **{"X-Slack-Retry-Num": retry, "X-Slack-Retry-Reason": "http_timeout"}) == ["200 OK"]
    # Only the first delivery skipped dispatch here; each retry claimed the event before its answer.
    assert pool.answered_first == 1
    assert wait_for(lambda: pool.children[0].held() == 0 and replies(standin) >= 1, timeout=20)
    assert replies(standin) == 1


def test_an_unknown_workspace_or_an_event_not_declared_is_dispatched_here(served, standin) -> None:
    app, ws, start_pool, answer = served
    pool = start_pool(answer_first=True)
    stranger = standin.create_workspace(name="Uninstalled")
    install_direct(app, standin, stranger.team_id)
    user = standin.add_user(ws.team_id)
    with standin.capturing_requests() as captured:
        standin.send_mention(stranger, text="help")
        standin.send_event(ws, {"type": "app_home_opened", "user": user, "tab": "home"})
    (stranger_raw, stranger_headers), (home_raw, home_headers) = captured
    app.installation_store.delete_all(enterprise_id=None, team_id=stranger.team_id)
    standin.clear_calls()
    # Bolt answers what it answers for a workspace it cannot authorize, and nothing is replied.
    assert answer(stranger_raw, stranger_headers) == ["200 OK"]
    assert answer(home_raw, home_headers) == ["200 OK"]
    assert pool.answered_first == 0
    assert standin.calls_for("views.publish")  # App Home ran here, before its answer
    assert replies(standin) == 0


def take_database_away(path: Path) -> Path:
    """Make new connections to the SQLite file fail ("unable to open database file"); returns where
    the file went. A link into a missing directory takes its place, so putting the file back is one
    atomic rename over it: a moment with nothing at `path` would let a retry create an empty database
    there and keep that connection ("no such table" from then on)."""
    away = path.with_name(path.name + ".away")
    path.rename(away)
    path.symlink_to(path.parent / "missing-directory" / path.name)
    return away


def test_without_the_database_a_first_delivery_is_not_answered_first(served, standin) -> None:
    app, ws, start_pool, answer = served
    pool = start_pool(answer_first=True)
    (raw, headers), = captured_mentions(standin, ws, 1)
    app.authorize_cache.invalidate_workspace(workspace_key(None, ws.team_id))
    standin.clear_calls()
    # The database file cannot be opened: authorize cannot confirm the workspace, so Bolt
    # dispatches the event here and the app answers 503: Slack redelivers it, nothing is lost.
    app.engine.dispose()
    take_database_away(Path(app.engine.url.database))
    assert answer(raw, headers) == ["503 Service Unavailable"]
    assert pool.answered_first == 0 and replies(standin) == 0


def test_an_answered_request_whose_lazy_process_died_meanwhile_is_dispatched_by_the_worker(served, standin) -> None:
    app, ws, start_pool, _answer = served
    pool = start_pool(answer_first=True)
    (raw, headers), = captured_mentions(standin, ws, 1)
    standin.clear_calls()
    statuses: list[str] = []
    body = WebApp(app)(wsgi_environ(raw, headers), lambda status, _h: statuses.append(status))
    list(body)  # answered: a slot in the lazy process is reserved, the request not yet written
    child = pool.children[0]
    os.kill(child.process.pid, signal.SIGKILL)
    child.process.join(10)
    body.close()  # the write fails: the worker dispatches the request itself
    assert statuses == ["200 OK"] and pool.answered_first == 0
    assert wait_for(lambda: replies(standin) == 1, timeout=20), "the answered mention was lost"


def test_a_reserved_slot_is_given_back_when_the_answer_cannot_be_started(served, standin) -> None:
    app, ws, start_pool, _answer = served
    pool = start_pool(answer_first=True)
    (raw, headers), = captured_mentions(standin, ws, 1)

    statuses: list[str] = []

    def start_response_failing_once(status: str, _headers: list) -> None:
        statuses.append(status)
        if len(statuses) == 1:
            raise ValueError("e.g. a header the server refuses")

    body = WebApp(app)(wsgi_environ(raw, headers), start_response_failing_once)
    # The last line of defence answered 500, with a plain body: no close() will deliver anything.
    assert statuses == ["200 OK", "500 Internal Server Error"] and isinstance(body, list)
    assert pool.children[0].held() == 0 and pool.answered_first == 0


def test_an_event_answered_first_survives_a_short_database_outage(served, standin) -> None:
    app, ws, start_pool, answer = served
    pool = start_pool(answer_first=True)
    mentions = captured_mentions(standin, ws, 2)
    standin.clear_calls()
    # The worker resolved the workspace moments ago; the lazy process has not (its cache is cold).
    assert app._authorize.resolves(BoltContext({"team_id": ws.team_id, "is_enterprise_install": False}))
    path = Path(app.engine.url.database)
    away = take_database_away(path)
    try:
        assert answer(*mentions[0]) == ["200 OK"]
        assert pool.answered_first == 1
        assert wait_for(pool.in_trouble, timeout=10), "the lazy process did not report the outage"
        # Meanwhile the worker dispatches first deliveries itself again (a 503 would reach Slack).
        assert answer(*mentions[1]) == ["200 OK"]  # its authorization is cached; the reply is lazy
        assert (pool.answered_first, pool.handed_over) == (1, 1)
        assert replies(standin) == 0
    finally:
        away.rename(path)
    # Both jobs were kept and tried again: nothing acknowledged was lost.
    assert wait_for(lambda: replies(standin) == 2, timeout=20)


def test_only_plain_context_values_travel_with_a_job(caplog) -> None:
    request = BoltRequest(body='{"type": "event_callback"}', headers={"content-type": ["application/json"]})
    request.context.update({"mention": "reply", "count": 3, "client_like": object(), "bot_token": "xoxb-secret"})
    setattr(request, ACK_ADDED, {"mention", "count", "client_like"})

    def reply() -> None:
        pass

    with caplog.at_level(logging.WARNING, logger="bolt_app.lazy_processes"):
        job = job_for(reply, request)
    assert job.handoff == {"mention": "reply", "count": 3}  # not the token: authorize finds it again
    assert job.function_name == "reply" and job.body == request.raw_body
    assert any("client_like" in r.getMessage() for r in caplog.records)


ORPHANING_WORKER = """
import json, os, sys, time
from bolt_app import lazy_processes
from bolt_app.lazy_processes import LazyJob, LazyProcessPool
from bolt_app.settings import load_settings

if __name__ == "__main__":
    spec = json.load(open(sys.argv[1]))
    pool = LazyProcessPool(load_settings(spec["env"]), processes=1, threads=4).start()
    while not pool.children[0].accepting:
        time.sleep(0.05)
    for body, headers in spec["jobs"]:
        assert pool.submit(LazyJob("reply", body, headers, {"mention": "claim_then_reply"}))
    print(pool.children[0].process.pid, flush=True)
    os._exit(0)  # a worker killed mid-flight: no shutdown hook, no atexit
"""


def test_a_lazy_process_whose_worker_dies_finishes_its_jobs_and_exits(settings, standin, tmp_path) -> None:
    database.upgrade(database.create_engine(settings.database_url, pool_size=1))
    app = create_app(settings)
    ws = standin.create_workspace(name="Orphaned")
    install_direct(app, standin, ws.team_id)
    mentions = captured_mentions(standin, ws, 4)
    standin.clear_calls()
    standin.latency_seconds = 0.5  # still waiting on Slack when the worker is gone
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({
        "env": base_env(standin, settings.database_url),
        "jobs": [(raw.decode(), {k.lower(): [v] for k, v in headers.items()}) for raw, headers in mentions],
    }))
    script = tmp_path / "worker.py"
    script.write_text(ORPHANING_WORKER)
    worker = subprocess.run([sys.executable, str(script), str(spec)], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert worker.returncode == 0, worker.stderr
    child_pid = int(worker.stdout.split()[0])
    assert wait_for(lambda: replies(standin) == 4, timeout=20), "jobs handed over before the worker died were lost"

    def gone() -> bool:
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            return True
        status = open(f"/proc/{child_pid}/stat").read().rsplit(")", 1)[1].split()[0]
        return status == "Z"  # exited, waiting for init to reap it

    assert wait_for(gone, timeout=20), "the lazy process outlived its worker"
