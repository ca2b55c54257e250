"""The worker's decisions without processes: what is retried and when, what a job carries, what
is logged, and the command line's refusals."""

from __future__ import annotations

import json
import logging
from urllib.error import URLError

import pytest
import sqlalchemy as sa
from dramatiq import Message
from dramatiq.middleware import TimeLimitExceeded
from slack_bolt import App, BoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bolt_app import background
from bolt_app.background import JobOutcome, QueueLazyListenerRunner, TaskQueue, job_for
from bolt_app.features.idempotency import ClaimHeld
from bolt_app.worker import MAX_RETRIES, HideJobBodies, JobFailed, _retry_when, describe, retry_delay
from tests.background.support import run_cli
from tests.support import base_env, free_port, settings_for


def slack_error(error: str, status: int = 200, headers: dict | None = None) -> SlackApiError:
    response = SlackResponse(client=None, http_verb="POST", api_url="http://x/api/chat.postMessage", req_args={},
                             data={"ok": False, "error": error}, headers=headers or {}, status_code=status)
    return SlackApiError("The request to the Slack API failed.", response)


@pytest.mark.parametrize(
    "error, delay",
    [
        (slack_error("ratelimited", 429, {"Retry-After": "7"}), 7.0),
        (slack_error("ratelimited", 429, {"retry-after": "3"}), 3.0),
        (slack_error("ratelimited", 429), 30),  # no Retry-After header: DEFAULT_RETRY_AFTER_SECONDS
        (slack_error("internal_error", 500), 0),
        (slack_error("service_unavailable"), 0),
        (slack_error("channel_not_found"), None),  # final: no retry fixes it
        (slack_error("invalid_auth"), None),
        (ClaimHeld(12.0), 12.0),
        (URLError("connection refused"), 0),
        (ConnectionResetError(), 0),
        (TimeoutError(), 0),
        (sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")), 0),
        (TimeLimitExceeded(), 0),
        (background.QueueUnavailable("down"), 0),
        (KeyError("channel"), None),  # a bug: retrying repeats it
    ],
)
def test_what_is_retried_and_when(error: BaseException, delay: float | None) -> None:
    assert retry_delay(error) == delay


def test_retries_stop_at_the_limit_and_never_follow_a_final_failure() -> None:
    assert _retry_when(0, ConnectionResetError()) and _retry_when(MAX_RETRIES - 1, ConnectionResetError())
    assert not _retry_when(MAX_RETRIES, ConnectionResetError())
    assert not _retry_when(0, JobFailed("channel_not_found"))


def test_summaries_are_one_masked_line() -> None:
    assert describe(slack_error("ratelimited", 429)) == "SlackApiError: ratelimited (HTTP 429)"
    assert describe(ValueError("first line\nSELECT … secret parameters")) == "ValueError: first line"
    assert "xoxb-1234" not in describe(RuntimeError("bad token xoxb-1234-abcdef"))
    assert describe(KeyError()) == "KeyError"


def test_dramatiq_log_lines_show_a_job_by_its_id_not_its_body() -> None:
    message = Message(queue_name="bolt_lazy", actor_name="run_lazy_function", args=(),
                      kwargs={"body": '{"event": {"text": "my secret plan"}}', "headers": {}}, options={})
    record = logging.LogRecord("dramatiq.worker", logging.WARNING, __file__, 1, "Failed to post_process_message(%s)",
                               (message,), None)
    HideJobBodies().filter(record)
    assert record.getMessage() == f"Failed to post_process_message(run_lazy_function[{message.message_id}])"


def test_a_job_carries_the_body_and_slack_headers_only() -> None:
    raw = "payload=" + json.dumps({"type": "block_actions", "team": {"id": "T1"}, "user": {"id": "U1"}, "actions": []})
    request = BoltRequest(body=raw, headers={"content-type": "application/x-www-form-urlencoded",
                                             "x-slack-signature": "v0=ab", "x-slack-request-timestamp": "1",
                                             "cookie": "session=1", "x-forwarded-for": "10.0.0.1"})
    job = job_for("handle_vote", request)
    assert job["body"] == raw and job["function"] == "handle_vote" and job["team"] == "T1"
    assert set(job["headers"]) == {"content-type", "x-slack-signature", "x-slack-request-timestamp",
                                   "x-slack-bolt-lazy-only", "x-slack-bolt-lazy-function-name"}
    rebuilt = BoltRequest(body=job["body"], headers=job["headers"])
    assert rebuilt.lazy_only and rebuilt.lazy_function_name == "handle_vote" and rebuilt.body == request.body

    # Socket Mode requests hold the parsed payload: it travels as JSON, which Bolt parses back.
    socket = BoltRequest(body={"type": "event_callback", "team_id": "T2", "event": {"type": "app_mention"}},
                         mode="socket_mode")
    job = job_for("reply_to_mention", socket)
    assert BoltRequest(body=job["body"], headers=job["headers"]).body == socket.body and job["team"] == "T2"


def test_the_runner_hands_a_jobs_failure_to_the_worker_and_otherwise_behaves_like_bolts() -> None:
    runner = QueueLazyListenerRunner(queue=None, logger=logging.getLogger("test"))  # type: ignore[arg-type]

    def lazy(body: dict) -> None:
        raise ConnectionResetError("Slack went away")

    request = BoltRequest(body={"type": "event_callback", "event": {}}, mode="socket_mode")
    runner.run(lazy, request)  # not a job (no outcome attached): logged and swallowed, as Bolt does
    outcome = JobOutcome()
    setattr(request, background.OUTCOME, outcome)
    runner.run(lazy, request)
    assert outcome.ran and isinstance(outcome.error, ConnectionResetError)


def test_attach_sets_only_the_lazy_runner_and_only_with_a_queue(standin, sqlite_url) -> None:
    app = App(signing_secret="secret", token="xoxb-1", token_verification_enabled=False)
    settings = settings_for(standin, sqlite_url)
    assert background.attach(app, settings) is None
    before = app.listener_runner
    queue = background.attach(app, settings_for(standin, sqlite_url, TASK_QUEUE_URL="redis://127.0.0.1:9/0"))
    assert isinstance(queue, TaskQueue) and app.listener_runner is before
    assert isinstance(app.listener_runner.lazy_listener_runner, QueueLazyListenerRunner)
    assert app.task_queue is queue  # type: ignore[attr-defined]


def test_the_command_line_refuses_what_it_cannot_do(standin, sqlite_url, tmp_path) -> None:
    env = base_env(standin, sqlite_url)
    no_queue = run_cli(env, "jobs", "failed", cwd=tmp_path)
    assert no_queue.returncode == 2 and "TASK_QUEUE_URL" in no_queue.stderr
    worker = run_cli(env, "worker", cwd=tmp_path)
    assert worker.returncode == 2 and "TASK_QUEUE_URL is required to run a worker" in worker.stderr
    env["TASK_QUEUE_URL"] = f"redis://:queue-password@127.0.0.1:{free_port()}/0"
    neither = run_cli(env, "jobs", "retry", cwd=tmp_path)
    assert neither.returncode == 2 and "--all" in neither.stderr
    unreachable = run_cli(env, "jobs", "failed", cwd=tmp_path)
    assert unreachable.returncode == 1 and "cannot be reached" in unreachable.stderr
    assert "queue-password" not in unreachable.stderr + unreachable.stdout
