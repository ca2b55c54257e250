"""`python main.py worker`: runs the `lazy=` work the web processes put on the task queue.

Runs on any host that reaches the database, Redis and Slack. It builds the app with the same
`create_app(settings)` and a Dramatiq worker (`dramatiq.Worker`, WORKER_THREADS threads in this
process; run more processes for more). Each job is dispatched through Bolt with `lazy_only`:
Bolt's middleware resolves the workspace's token (authorize), then runs only the named lazy
function. A job is acknowledged to Redis once its function returned; a job that failed is:

- retried later, without holding a thread, when it may work then: Slack rate limits (HTTP 429,
  after its Retry-After), Slack 5xx and transient errors, connection errors, the database or
  tokens unavailable, a delivery another attempt is still working on (after its lease), with
  exponential backoff (1 s, doubling with jitter, at most 5 min apart, MAX_RETRIES times);
- dead-lettered at once otherwise (a Slack error such as `channel_not_found`, a bug), and after
  its last retry. `python main.py jobs failed` lists dead letters, `jobs retry` re-runs them.

At least once: a worker killed with jobs in hand (kill -9, a lost host) stops heartbeating; every
worker runs the broker's maintenance every HEARTBEAT_SECONDS, which puts the jobs of a process
silent for background.HEARTBEAT_TIMEOUT_MS back on the queue. Idempotency leases
(features.idempotency) keep the re-run of a reply from posting twice, except when the worker
died between Slack's answer and recording it.

The worker runs BACKGROUND_NICE (default 10) below the web processes' CPU priority: where both share
a host, a burst of jobs does not slow the answers Slack waits for (bolt_app/lazy_work.py does the
same for lazy threads).

SIGTERM / SIGINT stop gracefully: no new jobs, the running ones finish (up to
STOP_TIMEOUT_SECONDS), the fetched-but-not-started ones go back on the queue.
"""

from __future__ import annotations

import http.client
import logging
import os
import signal
import threading
import time
from typing import Any, Callable, Optional

from slack_bolt import App, BoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from sqlalchemy import exc as sa_exc

from bolt_app import background, database
from bolt_app.features.idempotency import ClaimHeld
from bolt_app.logs import mask_secrets
from bolt_app.settings import Settings
from bolt_app.storage.crypto import TokenEncryptionError
from bolt_app.telemetry import context, exposition, labels, metrics
from bolt_app.tokens.rotation import TokensTemporarilyUnavailable

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 3.0  # well within background.HEARTBEAT_TIMEOUT_MS (15 s)
STOP_TIMEOUT_SECONDS = 25  # within Kubernetes' default 30 s grace period
MAX_RETRIES = 8
MIN_BACKOFF_MS = 1_000
MAX_BACKOFF_MS = 5 * 60_000
TIME_LIMIT_MS = 5 * 60_000  # a lazy function still running after this is interrupted (and retried)
DEFAULT_RETRY_AFTER_SECONDS = 30  # a 429 without Retry-After
# Slack errors answered with HTTP 200 that are worth another try; any other `ok: false` is final.
# `token_expired`: the token was refreshed when Slack refused it (tokens/rejections.py), so the
# next attempt is authorized with the new one.
TRANSIENT_SLACK_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                                    "request_timeout", "token_expired"})


class JobFailed(Exception):
    """Marker for the Retries middleware: dead-letter this job, do not retry it."""


def retry_delay(error: BaseException) -> Optional[float]:
    """Seconds to wait before the next attempt (0: exponential backoff), or None: do not retry."""
    from dramatiq.middleware import Interrupt

    if isinstance(error, ClaimHeld):
        return error.retry_after
    if isinstance(error, SlackApiError):
        status = getattr(error.response, "status_code", 200)
        if status == 429:
            return _retry_after_header(error) or DEFAULT_RETRY_AFTER_SECONDS
        code = error.response.get("error") if hasattr(error.response, "get") else None
        return 0 if status >= 500 or code in TRANSIENT_SLACK_ERRORS else None
    if isinstance(error, (OSError, http.client.HTTPException, sa_exc.DBAPIError, sa_exc.TimeoutError,
                          TokensTemporarilyUnavailable, TokenEncryptionError, background.QueueUnavailable,
                          Interrupt)):
        # Connection errors (URLError, timeouts, resets), the database or tokens unavailable, a
        # missing encryption key (an operator fixes it), the time limit.
        return 0
    return None


def _retry_after_header(error: SlackApiError) -> Optional[float]:
    headers = getattr(error.response, "headers", None) or {}
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(float(value if isinstance(value, str) else value[0]), 0.0)
            except (TypeError, ValueError, IndexError):
                return None
    return None


def describe(error: BaseException) -> str:
    """A one-line summary for logs and dead letters: the type and, for Slack, the error code and
    HTTP status; otherwise the first line (driver errors can embed SQL parameters after it)."""
    if isinstance(error, SlackApiError):
        code = error.response.get("error") if hasattr(error.response, "get") else None
        return f"SlackApiError: {code} (HTTP {getattr(error.response, 'status_code', '?')})"
    text = str(error).splitlines()[0][:200] if str(error) else ""
    return mask_secrets(f"{type(error).__name__}: {text}" if text else type(error).__name__)


def job_function(app: App) -> Callable[..., None]:
    """The actor: one job, dispatched through Bolt as a lazy_only request. Failures leave it as a
    dramatiq `Retry` (with a delay, or for backoff) or `JobFailed`; never as another exception,
    so Dramatiq never logs the job itself (its body) with them."""
    from dramatiq import Retry
    from dramatiq.middleware import Interrupt

    class Failed(Retry, JobFailed):
        pass

    def run_lazy_function(body: str, headers: dict[str, Any], function: Optional[str] = None,
                          team: Optional[str] = None) -> None:
        what = f"{function or 'lazy function'} (team {team or '?'})"
        try:
            outcome = background.JobOutcome()
            request = BoltRequest(body=body, headers=headers)
            setattr(request, background.OUTCOME, outcome)
            kind, name = labels.request_kind(request.body)
            with context.bound(request_kind=labels.describe_kind(kind, name), job=function,
                               **context.payload_fields(request.body)):
                response = app.dispatch(request)
            if outcome.ran and function:
                JOB_FUNCTIONS.add(labels.function_name(function))  # a name Bolt ran: the code's, bounded
            error = outcome.error
            if error is None and not outcome.ran:
                if response.status == 503:  # the app's error handler: database or tokens unavailable
                    error = TokensTemporarilyUnavailable("database or tokens unavailable before the function ran")
                elif response.status == 200:
                    # Authorize found no installation (uninstalled meanwhile), or no listener has a
                    # lazy function by that name any more (a deploy renamed it): nothing to run.
                    logger.warning("%s not run: no installation for the workspace, or no lazy function by that name",
                                   what)
                    return
                else:
                    error = JobFailed(f"dispatch answered {response.status} without running the function")
        except Interrupt as interrupted:  # the time limit
            error = interrupted
        if error is None:
            return
        delay = retry_delay(error)
        summary = describe(error)
        if delay is None:
            # A request Slack will never accept, or a bug: then the traceback helps.
            logger.warning("%s failed, not retried: %s", what, summary,
                           exc_info=None if isinstance(error, (SlackApiError, JobFailed)) else error)
            raise Failed(summary) from None
        when = f"in {delay:.0f} s" if delay else "with backoff"
        if isinstance(error, ClaimHeld):  # expected after a worker died mid-job: not a failure
            logger.info("%s waits for another attempt's lease; retried %s", what, when)
        else:
            logger.warning("%s failed, retried %s: %s", what, when, summary)
        raise Retry(summary, delay=int(delay * 1000) if delay else None) from None

    return run_lazy_function


def _retry_when(retries: int, error: BaseException) -> bool:
    return not isinstance(error, JobFailed) and retries < MAX_RETRIES


# Lazy function names that ran in this worker: the `function` label of job metrics (others: "other").
JOB_FUNCTIONS: set[str] = set()


def broker_middleware(queue: background.TaskQueue) -> list:
    from dramatiq.middleware import Middleware, Retries, TimeLimit

    class JobMetrics(Middleware):
        """Counts each job by outcome: done, retried or failed (dead-lettered). Listed before
        Retries, like DeadLetterNotes, to see its verdict (`message.failed`)."""

        def __init__(self) -> None:
            self.started: dict[str, float] = {}

        def before_process_message(self, broker: Any, message: Any) -> None:
            self.started[message.message_id] = time.perf_counter()

        def after_process_message(self, broker: Any, message: Any, *, result: Any = None,
                                  exception: Optional[BaseException] = None) -> None:
            seconds = time.perf_counter() - self.started.pop(message.message_id, time.perf_counter())
            function = message.kwargs.get("function")
            label = function if function in JOB_FUNCTIONS else labels.OTHER
            outcome = "done" if exception is None else ("failed" if message.failed else "retried")
            metrics.job_finished(label, outcome, seconds)

        def after_skip_message(self, broker: Any, message: Any) -> None:
            self.started.pop(message.message_id, None)

    class DeadLetterNotes(Middleware):
        """Writes the summary `jobs failed` shows next to each dead letter. Listed before Retries:
        Dramatiq runs `after_*` hooks in reverse order, so this sees Retries' verdict."""

        def after_process_message(self, broker: Any, message: Any, *, result: Any = None,
                                  exception: Optional[BaseException] = None) -> None:
            if exception is not None and message.failed:
                queue.note_failure(message.options["redis_message_id"], str(exception) or type(exception).__name__)

    return [
        TimeLimit(time_limit=TIME_LIMIT_MS),
        JobMetrics(),
        DeadLetterNotes(),
        Retries(min_backoff=MIN_BACKOFF_MS, max_backoff=MAX_BACKOFF_MS, retry_when=_retry_when),
    ]


class HideJobBodies(logging.Filter):
    """Dramatiq logs a message as `actor(body=…, headers=…)` in a few places (debug lines, a lost
    connection while acknowledging): shown as the actor and message id instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        from dramatiq import Message
        from dramatiq.broker import MessageProxy

        if isinstance(record.args, tuple) and any(isinstance(a, (Message, MessageProxy)) for a in record.args):
            record.args = tuple(
                f"{a.actor_name}[{a.message_id}]" if isinstance(a, (Message, MessageProxy)) else a for a in record.args
            )
        return True


def run(settings: Settings) -> int:
    import dramatiq

    from bolt_app.app import POOL_OVERFLOW, create_app
    from bolt_app.server import prepare_database

    assert settings.task_queue_url
    # Answers to Slack have a 3-second deadline and jobs do not: on a host shared with web
    # processes, the CPU goes to the answers first (docs/performance.md).
    try:
        os.nice(settings.background_nice)
    except OSError as error:
        logger.warning("The worker keeps its CPU priority (BACKGROUND_NICE not applied): %s", error)
    exposition.in_memory_only()  # one process: its metrics in memory, served on METRICS_PORT
    for handler in logging.getLogger().handlers:
        handler.addFilter(HideJobBodies())
    prepare_database(settings)  # migrates SQLite, checks a server database's schema
    engine = database.create_engine(settings.database_url, pool_size=settings.worker_threads + 2,
                                    max_overflow=POOL_OVERFLOW)
    app = create_app(settings, engine=engine)  # its lazy runner reports each job's outcome (background.py)
    # Rate limits go back to the queue with their Retry-After instead of sleeping in a thread.
    app.client.retry_handlers = [h for h in app.client.retry_handlers or []
                                 if not isinstance(h, RateLimitErrorRetryHandler)]
    queue = background.TaskQueue(settings.task_queue_url, middleware=[], socket_timeout=10.0)
    for middleware in broker_middleware(queue):
        queue.broker.add_middleware(middleware)
    dramatiq.Actor(job_function(app), broker=queue.broker, actor_name=background.ACTOR_NAME,
                   queue_name=background.QUEUE_NAME, priority=0, options={})
    worker = dramatiq.Worker(queue.broker, worker_threads=settings.worker_threads)
    metrics_server = None
    if settings.metrics_port:  # this process's metrics, and the queue's depth read at each scrape
        depth = exposition.QueueCollector(background.TaskQueue(settings.task_queue_url, socket_timeout=2.0))
        metrics_server = exposition.serve_process_metrics(settings.host, settings.metrics_port, depth)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    worker.start()
    heartbeat = threading.Thread(target=_heartbeat, args=(queue, stop), name="queue-heartbeat", daemon=True)
    heartbeat.start()
    logger.info("Worker ready: %d thread(s), nice +%d, queue %s on %s", settings.worker_threads, settings.background_nice,
                background.QUEUE_NAME, settings.task_queue_url_for_display)
    while not stop.wait(1.0):
        pass
    logger.info("Stopping: no new jobs; finishing the running ones (up to %d s)", STOP_TIMEOUT_SECONDS)
    worker.stop(timeout=STOP_TIMEOUT_SECONDS * 1000)
    heartbeat.join(timeout=5)
    if metrics_server is not None:
        metrics_server.stop()
    engine.dispose()
    logger.info("Worker stopped")
    return 0


def _heartbeat(queue: background.TaskQueue, stop: threading.Event) -> None:
    """Tells the broker this worker is alive even while every thread is busy (its consumers only
    talk to Redis when they fetch), and puts dead workers' jobs back on the queue."""
    import redis

    failing = False
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            queue.maintain(queue.broker.broker_id)
            if failing:
                logger.info("Task queue reachable again")
            failing = False
        except redis.RedisError as error:
            if not failing:
                logger.warning("Task queue unreachable (%s); the worker keeps trying", type(error).__name__)
            failing = True
