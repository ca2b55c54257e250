"""Lazy work on the task queue (TASK_QUEUE_URL): the web processes enqueue before they answer,
`python main.py worker` processes run the jobs with each workspace's token, retry what Slack
asks them to retry, and keep what fails for good where `jobs failed` / `jobs retry` reach it."""

from __future__ import annotations

import json
import os
import time

import sqlalchemy as sa
from slack_bolt import BoltRequest

from bolt_app import database
from bolt_app.app import create_app
from bolt_app.background import TaskQueue, job_for
from bolt_app.web import WebApp
from tests.background.support import replies, run_cli
from tests.security.support import TcpProxy
from tests.support import (answer_in_process, base_env, deliveries_table_missing, install, install_direct, redelivered_mention, settings_for,
                           wait_for, wsgi_environ)


def app_in_queue_mode(standin, sqlite_url: str, task_queue_url: str, workspace_name: str):  # type: ignore[no-untyped-def]
    """An in-process app enqueueing to the test's Redis database, and one workspace installed."""
    database.upgrade(database.create_engine(sqlite_url, pool_size=1))
    app = create_app(settings_for(standin, sqlite_url, TASK_QUEUE_URL=task_queue_url))
    ws = standin.create_workspace(name=workspace_name)
    install_direct(app, standin, ws.team_id)
    return app, ws


def test_the_job_is_in_redis_before_the_answer_and_carries_only_body_and_headers(
        standin, sqlite_url, task_queue_url) -> None:
    app, ws = app_in_queue_mode(standin, sqlite_url, task_queue_url, "Ordering")
    with standin.capturing_requests() as captured:
        standin.send_mention(ws, text="hello")
    (raw, headers), = captured
    queue = app.task_queue
    assert queue is not None and queue.waiting() == 0
    seen_at_answer: list[tuple[str, int]] = []
    body = WebApp(app)(wsgi_environ(raw, headers),
                       lambda status, _headers: seen_at_answer.append((status, queue.waiting())))
    list(body)
    getattr(body, "close", lambda: None)()
    assert seen_at_answer == [("200 OK", 1)]  # the job was in Redis when the answer was started

    (stored,) = [json.loads(data) for data in queue.client.hvals("dramatiq:bolt_lazy.msgs")]
    job = stored["kwargs"]
    assert job["body"] == raw.decode() and job["function"] == "reply_to_mention" and job["team"] == ws.team_id
    assert job["headers"]["x-slack-bolt-lazy-only"] == ["1"]
    assert job["headers"]["x-slack-bolt-lazy-function-name"] == ["reply_to_mention"]
    assert set(job["headers"]) <= {"content-type", "x-slack-request-timestamp", "x-slack-signature",
                                   "x-slack-bolt-lazy-only", "x-slack-bolt-lazy-function-name"}
    assert replies(standin) == []  # nothing ran here
    app.engine.dispose()


def test_a_request_answered_503_enqueues_nothing(standin, sqlite_url, task_queue_url) -> None:
    # The redelivery's `ack=` step cannot ask the database: 503, Slack delivers it again, and its
    # job is enqueued then (Bolt starts the lazy functions all the same).
    app, ws = app_in_queue_mode(standin, sqlite_url, task_queue_url, "Outage")
    raw, headers = redelivered_mention(standin, ws)
    with deliveries_table_missing(app.engine):
        assert answer_in_process(app, raw, headers) == "503 Service Unavailable"
    assert TaskQueue(task_queue_url).waiting() == 0
    app.engine.dispose()


def test_jobs_wait_for_a_worker_which_replies_with_each_workspaces_token(
        standin, sqlite_url, task_queue_url, app_server_factory, worker_factory) -> None:
    server = app_server_factory(sqlite_url, TASK_QUEUE_URL=task_queue_url)
    assert server.process is not None
    first, second = standin.create_workspace(name="Acme"), standin.create_workspace(name="Globex")
    for ws in (first, second):
        assert install(server.url, standin, ws.team_id).response.status == 200
    standin.clear_calls()
    queue = TaskQueue(task_queue_url)

    # No worker runs at all: Slack still gets its 200s, the jobs wait in Redis.
    mentions = {ws.team_id: standin.send_mention(ws, text="hello there") for ws in (first, second)}
    assert {m.status for m in mentions.values()} == {200}
    assert queue.waiting() == 2
    # A job that waited longer than Slack's 5-minute signature window still runs: signatures are
    # checked by the web process, on arrival, never again in the worker.
    with standin.capturing_requests() as captured:
        late = standin.send_mention(first, text="from long ago")
    (raw, headers), = captured
    headers = {**headers, "X-Slack-Request-Timestamp": str(int(time.time()) - 6 * 60 - 30)}
    queue.send(job_for("reply_to_mention", BoltRequest(body=raw.decode(), headers=headers)))
    time.sleep(0.5)
    assert replies(standin) == []

    worker = worker_factory(sqlite_url, task_queue_url)
    # Below the web processes' CPU priority by default (BACKGROUND_NICE=10).
    assert os.getpriority(os.PRIO_PROCESS, worker.pid) == os.getpriority(os.PRIO_PROCESS, 0) + 10
    assert wait_for(lambda: len(replies(standin)) == 3, timeout=20), standin.calls
    for ws in (first, second):
        for reply in replies(standin, ws.team_id):
            assert reply.token_kind == "bot" and reply.params["channel"] == ws.default_channel_id
    threads = {(r.team_id, r.params["thread_ts"]) for r in replies(standin)}
    assert threads == {(first.team_id, mentions[first.team_id].payload["event"]["ts"]),
                       (second.team_id, mentions[second.team_id].payload["event"]["ts"]),
                       (first.team_id, late.payload["event"]["ts"])}
    assert wait_for(lambda: queue.waiting() == 0, timeout=10)  # acknowledged once done
    assert standin.calls_for("auth.test") == []  # the worker's authorize reads the installation store


def test_redis_down_at_enqueue_is_answered_503_and_healthz_says_so(
        standin, sqlite_url, task_queue_url, app_server_factory) -> None:
    base, db = task_queue_url.rsplit("/", 1)
    host, port = base.split("//", 1)[1].rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    try:
        server = app_server_factory(sqlite_url, TASK_QUEUE_URL=f"redis://127.0.0.1:{proxy.port}/{db}")
        ws = standin.create_workspace(name="Outage")
        assert install(server.url, standin, ws.team_id).response.status == 200
        health = server_health(server.url)
        assert health == (200, {"status": "ok", "database": "ok", "queue": "ok"})

        proxy.cut()
        started = time.monotonic()
        assert standin.send_mention(ws, text="while Redis is away").status == 503  # Slack retries it
        assert time.monotonic() - started < 3  # within Slack's deadline
        assert server_health(server.url) == (503, {"status": "unavailable", "database": "ok", "queue": "unreachable"})

        proxy.restore()
        assert wait_for(lambda: server_health(server.url)[0] == 200, timeout=10)
        assert standin.send_mention(ws, text="Redis is back").status == 200
        assert TaskQueue(task_queue_url).waiting() == 1
        assert "Request not processed, Slack will retry: QueueUnavailable" in server.logs()
    finally:
        proxy.stop()


def server_health(url: str) -> tuple[int, dict]:
    from tests.support import Browser

    response = Browser().get(f"{url}/healthz")
    return response.status, response.json()


def test_rate_limits_are_waited_out_and_failures_kept_for_an_admin(
        standin, sqlite_url, task_queue_url, app_server_factory, worker_factory, tmp_path) -> None:
    server = app_server_factory(sqlite_url, TASK_QUEUE_URL=task_queue_url)
    worker = worker_factory(sqlite_url, task_queue_url)
    ws = standin.create_workspace(name="Busy")
    assert install(server.url, standin, ws.team_id).response.status == 200
    standin.clear_calls()

    # One reply per 2 s in this workspace: the second is answered 429, Retry-After: 2.
    standin.set_rate_limit("chat.postMessage", max_calls=1, per_seconds=2, retry_after=2)
    assert standin.send_mention(ws, text="one").status == 200
    assert wait_for(lambda: len(replies(standin)) == 1, timeout=10)
    assert standin.send_mention(ws, text="two").status == 200
    assert wait_for(lambda: len(replies(standin)) == 2, timeout=15), standin.calls
    limited = [c for c in standin.calls_for("chat.postMessage") if c.status == 429]
    assert limited, "the second reply was never rate limited"
    assert replies(standin)[1].at - limited[0].at >= 2.0  # not before Retry-After
    assert "retried in 2 s: SlackApiError: ratelimited (HTTP 429)" in worker.logs()
    standin.clear_rate_limits()

    # A Slack error that no retry can fix: the job is dead-lettered at once.
    standin.set_failure("chat.postMessage", error="channel_not_found", status=200, count=1)
    failing = standin.send_mention(ws, text="into the void")
    assert failing.status == 200
    env = {**base_env(standin, sqlite_url), "TASK_QUEUE_URL": task_queue_url}
    listed = wait_for(lambda: "channel_not_found" in (out := run_cli(env, "jobs", "failed", cwd=tmp_path)).stdout
                      and out, timeout=15)
    assert listed and listed.returncode == 0, listed
    (line,) = [row for row in listed.stdout.splitlines() if "channel_not_found" in row]
    assert "reply_to_mention" in line and ws.team_id in line and "SlackApiError: channel_not_found (HTTP 200)" in line
    assert "xox" not in listed.stdout and "into the void" not in listed.stdout  # no token, no body
    assert len(replies(standin)) == 2

    retried = run_cli(env, "jobs", "retry", "--all", cwd=tmp_path)
    assert retried.returncode == 0 and "Put 1 job(s) back on the queue." in retried.stdout, retried
    assert wait_for(lambda: len(replies(standin)) == 3, timeout=15)
    assert replies(standin)[2].params["thread_ts"] == failing.payload["event"]["ts"]
    assert run_cli(env, "jobs", "failed", cwd=tmp_path).stdout.strip() == "No failed jobs."


def test_a_rerun_after_a_lost_worker_replies_once(standin, sqlite_url, task_queue_url, worker_factory) -> None:
    """The same job twice (a worker died after its reply but before acknowledging it): one reply."""
    app, ws = app_in_queue_mode(standin, sqlite_url, task_queue_url, "Twice")
    with standin.capturing_requests() as captured:
        standin.send_mention(ws, text="hello")
    (raw, headers), = captured
    job = job_for("reply_to_mention", BoltRequest(body=raw.decode(), headers=headers))
    queue = TaskQueue(task_queue_url)
    queue.send(job)
    queue.send(job)
    worker = worker_factory(sqlite_url, task_queue_url, WORKER_THREADS="1", BACKGROUND_NICE="0")
    assert os.getpriority(os.PRIO_PROCESS, worker.pid) == os.getpriority(os.PRIO_PROCESS, 0)
    assert wait_for(lambda: queue.waiting() == 0, timeout=15)
    assert len(replies(standin)) == 1
    with app.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT claimed_until FROM processed_deliveries")).scalars().all() == [None]
    app.engine.dispose()


def test_sigterm_lets_the_running_jobs_finish(standin, sqlite_url, task_queue_url, worker_factory) -> None:
    app, ws = app_in_queue_mode(standin, sqlite_url, task_queue_url, "Deploy")
    with standin.capturing_requests() as captured:
        for n in range(3):
            standin.send_mention(ws, text=f"help {n}")
    queue = TaskQueue(task_queue_url)
    for raw, headers in captured:
        queue.send(job_for("reply_to_mention", BoltRequest(body=raw.decode(), headers=headers)))
    standin.latency_seconds = 1.5  # every reply is still waiting on Slack when the signal comes
    worker = worker_factory(sqlite_url, task_queue_url)
    assert wait_for(lambda: fetched(queue) == 3, timeout=10)  # all three taken by the worker
    assert worker.stop() == 0
    assert len(replies(standin)) == 3 and queue.waiting() == 0, worker.logs()
    assert "Worker stopped" in worker.logs()
    app.engine.dispose()


def fetched(queue: TaskQueue) -> int:
    """Jobs a worker took off the queue and has not acknowledged (Dramatiq's `__acks__` sets)."""
    return sum(queue.client.scard(key) for key in queue.client.keys("dramatiq:__acks__.*.bolt_lazy"))


def test_poll_votes_are_recorded_and_shown_by_the_worker(
        standin, sqlite_url, task_queue_url, app_server_factory, worker_factory) -> None:
    from bolt_app.features.polls.tables import poll_votes
    from tests.e2e.test_polls import Calls, post_poll_with_command, rows, wait_message
    from tests.listeners import payloads

    server = app_server_factory(sqlite_url, TASK_QUEUE_URL=task_queue_url)
    worker = worker_factory(sqlite_url, task_queue_url)
    ws = standin.create_workspace(name="Polling")
    assert install(server.url, standin, ws.team_id).response.status == 200
    calls = Calls(standin)
    poll_id, ts, _ = post_poll_with_command(standin, calls, ws, '"Lunch?" "Pizza" "Sushi"')
    voter = standin.add_user(ws.team_id)
    click = payloads.vote(ws.team_id, voter, poll_id, 0, ws.default_channel_id, ts)
    calls.reset()
    assert standin.send_interactive(ws, click).status == 200
    assert standin.send_interactive(ws, click).status == 200  # the same click twice counts once
    update = calls.wait("chat.update", ws)[0]
    assert update.token_kind == "bot" and update.team_id == ws.team_id
    wait_message(standin, ws, ts, f"<@{voter}>", "1 vote", "100%")
    assert wait_for(lambda: TaskQueue(task_queue_url).waiting() == 0, timeout=10)
    assert len(rows(sqlite_url, poll_votes, poll_id=poll_id)) == 1
    assert "failed" not in worker.logs()
