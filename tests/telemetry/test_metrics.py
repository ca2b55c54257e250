"""Metrics, piece by piece, in this process: bounded labels, Web API answers, token refreshes,
database errors and the pool, the metrics HTTP server and the queue collector. (Every process
summed into one scrape: test_metrics_end_to_end.py.)"""

from __future__ import annotations

import socket
import threading

import pytest
import sqlalchemy as sa
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bolt_app import database
from bolt_app.app import create_app
from bolt_app.startup import StartupError
from bolt_app.storage.tables import workspace_key
from bolt_app.telemetry import db as telemetry_db
from bolt_app.telemetry import exposition, labels, metrics
from bolt_app.tokens.client import retry_handlers
from bolt_app.tokens.rotation import InstallationNeedsReinstall
from tests.support import Browser, free_port, install_direct, settings_for


def value(name: str, **label_values: str) -> float:
    return metrics.get().registry.get_sample_value(name, label_values) or 0.0


class Delta:
    """Sample values now, to compare with later (counts accumulate over the test session)."""

    def __init__(self, *samples: tuple[str, dict]):
        self.samples = samples
        self.before = [value(name, **found) for name, found in samples]

    def __call__(self) -> list[float]:
        return [value(name, **found) - before for (name, found), before in zip(self.samples, self.before)]


# ----------------------------------------------------------------------------- labels


@pytest.mark.parametrize("body, expected", [
    ({"type": "event_callback", "event": {"type": "app_mention"}}, ("event", "app_mention")),
    ({"type": "event_callback", "event": {"type": "reaction_added"}}, ("event", "other")),  # not in the manifest
    ({"type": "event_callback", "event": "junk"}, ("event", "other")),
    ({"command": "/poll", "team_id": "T1"}, ("command", "/poll")),
    ({"command": "/T0123ABCDEF", "team_id": "T1"}, ("command", "other")),
    ({"type": "block_actions", "actions": []}, ("action", "block_actions")),
    ({"type": "view_submission"}, ("view", "view_submission")),
    ({"type": "view_closed"}, ("view", "view_closed")),
    ({"type": "shortcut"}, ("shortcut", "shortcut")),
    ({"type": "message_action"}, ("shortcut", "message_action")),
    ({"type": "block_suggestion"}, ("options", "block_suggestion")),
    ({"type": "url_verification", "challenge": "x"}, ("url_verification", "")),
    ({"type": "U0123ABCDEF"}, ("other", "")),
    ("text", ("other", "")),
])
def test_request_kinds_are_bounded(body, expected) -> None:
    assert labels.request_kind(body) == expected


def test_web_api_methods_and_errors_are_bounded() -> None:
    assert labels.api_method("https://slack.com/api/chat.postMessage") == "chat.postMessage"
    assert labels.api_method("http://127.0.0.1:9/api/oauth.v2.access?x=1") == "oauth.v2.access"
    assert labels.api_method("https://slack.com/api/admin.conversations.restrictAccess.addGroup") == \
        "admin.conversations.restrictAccess.addGroup"
    assert labels.api_method("https://slack.com/api/made.up.method") == "other"
    assert labels.api_method("https://hooks.slack.com/commands/T1/123/abc") == "webhook"
    assert len(labels.known_methods()) > 200
    assert labels.api_error("channel_not_found") == "channel_not_found"
    assert labels.api_error("xoxb-1-leaked-into-an-error") == "other" and labels.api_error(None) == "other"
    assert labels.http_outcome(429) == "http_429" and labels.http_outcome(599) == "http_5xx"


# ----------------------------------------------------------------------------- Web API


def test_every_web_api_answer_is_counted_retries_included(standin) -> None:
    client = WebClient(base_url=standin.api_url, retry_handlers=retry_handlers())  # api.test needs no token
    post = ("boltapp_slack_api_calls_total", {"method": "api.test", "outcome": "ok"})
    failed = ("boltapp_slack_api_calls_total", {"method": "api.test", "outcome": "internal_error"})
    limited = ("boltapp_slack_api_calls_total", {"method": "api.test", "outcome": "http_429"})
    unavailable = ("boltapp_slack_api_calls_total", {"method": "api.test", "outcome": "http_503"})
    waits = ("boltapp_slack_api_retry_after_seconds_sum", {"method": "api.test"})
    unknown = ("boltapp_slack_api_calls_total", {"method": "other", "outcome": "unknown_method"})
    delta = Delta(post, failed, limited, unavailable, waits, unknown)

    client.api_test()
    standin.set_failure("api.test", error="internal_error", count=1)
    with pytest.raises(SlackApiError):
        client.api_test()
    standin.set_failure("api.test", error="service_unavailable", status=503, count=1)
    client.api_test()  # 503, retried by the server-error handler: both answers counted
    standin.set_rate_limit("api.test", max_calls=1, per_seconds=60, retry_after=0)
    client.api_test()
    client.retry_handlers = [h for h in client.retry_handlers if type(h).__name__ != "RateLimitErrorRetryHandler"]
    with pytest.raises(SlackApiError):
        client.api_test()  # 429 with Retry-After: 0, not retried
    standin.clear_rate_limits()
    with pytest.raises(SlackApiError):
        client.api_call("made.up.method")
    assert delta() == [3, 1, 1, 1, 0, 1]
    assert value("boltapp_slack_api_retry_after_seconds_count", method="api.test") >= 1


def test_a_failing_counter_never_breaks_the_call(standin, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("counting failed")

    monkeypatch.setattr(metrics, "api_call", broken)
    assert WebClient(base_url=standin.api_url, retry_handlers=retry_handlers()).api_test()["ok"]


# ----------------------------------------------------------------------------- token refresh


def test_refresh_outcomes_and_lock_wait(standin, sqlite_url) -> None:
    settings = settings_for(standin, sqlite_url)
    database.upgrade(database.create_engine(sqlite_url, pool_size=1))
    app = create_app(settings)
    ws = standin.create_workspace(name="Refreshing")
    installation = install_direct(app, standin, ws.team_id)
    assert app.tokens is not None
    key = workspace_key(installation.enterprise_id, installation.team_id)
    refreshed = ("boltapp_token_refreshes_total", {"token": "bot", "outcome": "refreshed"})
    elsewhere = ("boltapp_token_refreshes_total", {"token": "bot", "outcome": "done_elsewhere"})
    reinstall = ("boltapp_token_refreshes_total", {"token": "bot", "outcome": "needs_reinstall"})
    waited = ("boltapp_token_refresh_lock_wait_seconds_count", {"token": "bot"})
    delta = Delta(refreshed, elsewhere, reinstall, waited)

    old = installation.bot_token
    app.tokens.refresh_bot(key, rejected_token=old)
    app.tokens.refresh_bot(key, rejected_token=old)  # someone already replaced it
    standin.revoke_refresh_tokens(ws.team_id)
    with pytest.raises(InstallationNeedsReinstall):
        app.tokens.refresh_bot(key, rejected_token=app.tokens.read_bot(key).bot_token)
    assert delta() == [1, 1, 1, 3]
    app.engine.dispose()


# ----------------------------------------------------------------------------- database


def test_database_errors_by_kind_and_the_pool_in_use(tmp_path) -> None:
    engine = database.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", pool_size=1, max_overflow=0)
    operational = ("boltapp_db_errors_total", {"kind": "operational"})  # SQLite's "no such table"
    integrity = ("boltapp_db_errors_total", {"kind": "integrity"})
    delta = Delta(operational, integrity)
    in_use = value("boltapp_db_pool_checked_out")
    with engine.connect() as conn:
        assert value("boltapp_db_pool_checked_out") == in_use + 1
        with pytest.raises(sa.exc.OperationalError):
            conn.exec_driver_sql("SELECT * FROM missing_table")
        conn.rollback()
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        with pytest.raises(sa.exc.IntegrityError):
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    assert value("boltapp_db_pool_checked_out") == in_use
    assert delta() == [1, 1]
    engine.dispose()


def test_a_pool_with_no_connection_to_give_is_counted() -> None:
    pool = telemetry_db.CountingQueuePool(lambda: __import__("sqlite3").connect(":memory:"), pool_size=1,
                                          max_overflow=0, timeout=0.05)
    delta = Delta(("boltapp_db_errors_total", {"kind": "pool_timeout"}))
    held = pool.connect()
    with pytest.raises(sa.exc.TimeoutError):
        pool.connect()
    held.close()
    assert delta() == [1]


# ----------------------------------------------------------------------------- exposition


def test_the_metrics_server_answers_get_metrics_only() -> None:
    metrics.job_enqueued("served_function")
    server = exposition.MetricsServer("127.0.0.1", free_port(), exposition.process_registry()).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        page = Browser().get(f"{base}/metrics")
        assert page.status == 200 and page.header("Content-Type").startswith("text/plain")
        assert 'boltapp_jobs_enqueued_total{function="served_function"}' in page.text
        for path in ("/", "/healthz", "/metrics/x", "/slack/events"):
            assert Browser().get(base + path).status == 404
        assert Browser().request("HEAD", f"{base}/metrics").status == 200
    finally:
        server.stop()


def test_a_busy_metrics_port_is_one_startup_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError) as info:
            exposition.MetricsServer("127.0.0.1", port, exposition.process_registry()).start()
    assert str(info.value).startswith(f"METRICS_PORT: cannot listen on 127.0.0.1:{port}")


def test_stale_directories_of_dead_masters_are_removed(tmp_path) -> None:
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = tmp_path / f"{exposition.DIR_PREFIX}{int(dead.stdout)}-abc"
    alive = tmp_path / f"{exposition.DIR_PREFIX}{__import__('os').getpid()}-def"
    unrelated = tmp_path / "something-else"
    for path in (gone, alive, unrelated):
        path.mkdir()
        (path / "counter_1.db").write_bytes(b"")
    exposition.remove_stale_directories(str(tmp_path))
    assert not gone.exists() and alive.exists() and unrelated.exists()


def test_the_queue_collector_reads_redis_at_scrape_time(task_queue_url) -> None:
    from bolt_app.background import TaskQueue

    queue = TaskQueue(task_queue_url)
    collector = exposition.QueueCollector(queue)
    depth = {family.name: family.samples[0].value for family in collector.collect()}
    assert depth == {"boltapp_queue_depth": 0, "boltapp_queue_dead_letters": 0}
    queue.send({"body": "{}", "headers": {}, "function": "f", "team": None})
    queue.send({"body": "{}", "headers": {}, "function": "f", "team": None})
    assert {f.name: f.samples[0].value for f in collector.collect()}["boltapp_queue_depth"] == 2

    unreachable = exposition.QueueCollector(TaskQueue(f"redis://127.0.0.1:{free_port()}/0"))
    assert list(unreachable.collect()) == []  # the scrape goes on without them


def test_recording_is_thread_safe() -> None:
    delta = Delta(("boltapp_jobs_enqueued_total", {"function": "threaded"}))
    threads = [threading.Thread(target=lambda: [metrics.job_enqueued("threaded") for _ in range(500)])
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert delta() == [2000]
