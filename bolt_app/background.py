"""Where `lazy=` work runs: Bolt's threads (the default), or a task queue when TASK_QUEUE_URL is set.

With a queue (Dramatiq's Redis broker), the web processes only enqueue: `QueueLazyListenerRunner`
takes the place of Bolt's lazy runner, as Bolt's own AWS Lambda adapter does, and each `lazy=`
function becomes a message holding what Bolt needs to run it again elsewhere: the request's raw
body and its Slack headers, plus `x-slack-bolt-lazy-only: 1` and
`x-slack-bolt-lazy-function-name`. The message is written to Redis while Bolt dispatches the
request, so before Slack gets its 200; when Redis cannot take it, `QueueUnavailable` is raised and
the app's error handler answers 503 (Slack delivers the request again).

`python main.py worker` (bolt_app/worker.py) builds the same app and dispatches each message
through Bolt with `lazy_only`: Bolt runs its middleware (authorize resolves the workspace's token
in the worker), then only the named function. In the worker, the runner's `run` hands the
function's exception to the worker (which retries or dead-letters the job) instead of logging it
away as Bolt's runner does.

Dead letters stay where Dramatiq's Redis broker puts them (`dramatiq:<queue>.XQ`, kept 7 days);
`failed_jobs` lists them with a short note the worker writes next to each (time, error summary),
and `retry_failed` puts them back on the queue (`python main.py jobs failed|retry`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from slack_bolt import App, BoltRequest
from slack_bolt.lazy_listener import LazyListenerRunner

from bolt_app.lazy_work import ack_step_failed, call_lazy_function, lazy_only_headers
from bolt_app.settings import Settings
from bolt_app.telemetry import metrics

if TYPE_CHECKING:
    import redis

logger = logging.getLogger(__name__)

QUEUE_NAME = "bolt_lazy"
ACTOR_NAME = "run_lazy_function"
NAMESPACE = "dramatiq"  # the broker's default key prefix: dramatiq:bolt_lazy, dramatiq:bolt_lazy.XQ, …
# A process that has not touched the broker for this long is taken for dead, and the jobs it had
# fetched go back on the queue (Dramatiq's default is 60 s). Workers heartbeat every few seconds
# (bolt_app/worker.py); every process passes the same value, as the check uses the caller's.
HEARTBEAT_TIMEOUT_MS = 15_000
DEAD_MESSAGE_TTL_MS = 7 * 24 * 3600 * 1000  # Dramatiq's default: dead letters are kept a week
# Enqueueing happens while Slack waits (3 s): a Redis that does not answer fails fast into a 503.
CONNECT_TIMEOUT_SECONDS = 1.0
SOCKET_TIMEOUT_SECONDS = 2.0
# The request headers a job carries: what Bolt reads (content type, Slack's x-slack-* headers).
KEPT_HEADERS = ("content-type",)
# A BoltRequest attribute set by the worker: where `QueueLazyListenerRunner.run` reports the outcome.
OUTCOME = "queue_job_outcome"


class QueueUnavailable(Exception):
    """The task queue did not take a job (Redis unreachable, read-only, out of memory)."""


@dataclass
class JobOutcome:
    ran: bool = False
    error: Optional[BaseException] = None


@dataclass(frozen=True)
class FailedJob:
    id: str  # the dead letter's id in Redis
    failed_at: datetime
    function: str
    team: str
    attempts: int
    error: str


def redis_client(url: str, *, socket_timeout: float = SOCKET_TIMEOUT_SECONDS) -> "redis.Redis":
    """A client that fails fast: one immediate retry (a pooled connection Redis closed), no backoff."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


class TaskQueue:
    """The queue as the web processes, the workers and the admin commands see it: a Dramatiq
    `RedisBroker` on TASK_QUEUE_URL (nothing connects until the first command)."""

    def __init__(self, url: str, *, middleware: Optional[list] = None, socket_timeout: float = SOCKET_TIMEOUT_SECONDS):
        from dramatiq.brokers.redis import RedisBroker

        self.client = redis_client(url, socket_timeout=socket_timeout)
        self.broker = RedisBroker(
            client=self.client,
            middleware=middleware if middleware is not None else [],  # enqueueing needs none
            namespace=NAMESPACE,
            heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
            dead_message_ttl=DEAD_MESSAGE_TTL_MS,
        )
        self._dead = f"{NAMESPACE}:{QUEUE_NAME}.XQ"
        self._maintainer: Any = None

    # ------------------------------------------------------------------ both sides

    def send(self, job: dict[str, Any]) -> None:
        """Put a job on the queue; raises QueueUnavailable when Redis does not take it."""
        import redis
        from dramatiq import Message

        message = Message(queue_name=QUEUE_NAME, actor_name=ACTOR_NAME, args=(), kwargs=job, options={})
        try:
            self.broker.enqueue(message)
        except redis.RedisError as error:
            raise QueueUnavailable(f"{type(error).__name__}: {str(error)[:200]}") from error

    def ping(self) -> bool:
        import redis

        try:
            return bool(self.client.ping())
        except redis.RedisError as error:
            logger.warning("Task queue health check failed: %s", type(error).__name__)
            return False

    def waiting(self) -> int:
        """Jobs not finished yet: queued, delayed for a retry, or fetched by a worker."""
        return int(self.broker.do_qsize(QUEUE_NAME))

    def dead_letters(self) -> int:
        """Jobs dead-lettered and still kept (`failed_jobs` lists them)."""
        return int(self.client.zcard(self._dead))

    def maintain(self, broker_id: str) -> None:
        """Heartbeat for the worker whose broker is `broker_id`, and put back on the queue the
        jobs fetched by processes silent for HEARTBEAT_TIMEOUT_MS (killed workers).

        Dramatiq's broker does this on a random 0.1 % of its commands; a worker calls this every
        few seconds instead. It is the broker's own `qsize` command run with maintenance certain
        (`maintenance_chance` at its maximum), once for the queue and once for its delay queue.
        """
        from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker
        from dramatiq.common import dq_name

        maintainer = self._maintainer
        if maintainer is None or maintainer.broker_id != broker_id:
            maintainer = self._maintainer = RedisBroker(
                client=self.client, middleware=[], namespace=NAMESPACE, heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
                dead_message_ttl=DEAD_MESSAGE_TTL_MS, maintenance_chance=MAINTENANCE_SCALE,
            )
            maintainer.broker_id = broker_id
        for name in (QUEUE_NAME, dq_name(QUEUE_NAME)):
            maintainer.do_qsize(name)

    # ------------------------------------------------------------------ dead letters

    def _note_key(self, dead_id: str) -> str:
        return f"{self._dead}.note.{dead_id}"

    def note_failure(self, dead_id: str, error: str) -> None:
        """Written by the worker just before it dead-letters a job: the summary `jobs failed` shows."""
        self.client.set(self._note_key(dead_id), error[:300].encode(), px=DEAD_MESSAGE_TTL_MS)

    def failed_jobs(self) -> list[FailedJob]:
        """Dead-lettered jobs, oldest first (never their body: it may hold secrets)."""
        from dramatiq import Message

        entries = self.client.zrange(self._dead, 0, -1, withscores=True)
        if not entries:
            return []
        ids = [member.decode() for member, _ in entries]
        datas = self.client.hmget(f"{self._dead}.msgs", ids)
        notes = self.client.mget([self._note_key(i) for i in ids])
        jobs = []
        for dead_id, (_, score), data, note in zip(ids, entries, datas, notes):
            if data is None:
                continue
            message = Message.decode(data)
            jobs.append(FailedJob(
                id=dead_id,
                failed_at=datetime.fromtimestamp(score / 1000, tz=timezone.utc),
                function=str(message.kwargs.get("function") or "?"),
                team=str(message.kwargs.get("team") or "?"),
                attempts=int(message.options.get("retries", 0)) + 1,
                error=note.decode(errors="replace") if note else "(no note: see the worker's log)",
            ))
        return jobs

    def retry_failed(self, ids: Optional[Sequence[str]] = None) -> int:
        """Put dead-lettered jobs back on the queue as new jobs (retry count reset): the ones
        whose id starts with one of `ids`, or all of them. Returns how many. Raises ValueError
        for an id that matches none or several."""
        from dramatiq import Message

        known = [member.decode() for member in self.client.zrange(self._dead, 0, -1)]
        if ids is None:
            chosen = known
        else:
            chosen = []
            for wanted in ids:
                matches = [i for i in known if i.startswith(wanted)]
                if len(matches) != 1:
                    raise ValueError(f"{wanted!r} matches {'no' if not matches else 'more than one'} failed job")
                chosen.append(matches[0])
        count = 0
        for dead_id in chosen:
            data = self.client.hget(f"{self._dead}.msgs", dead_id)
            # Taken off the dead-letter set first: of two admins retrying at once, one re-queues it.
            if data is None or not self.client.zrem(self._dead, dead_id):
                continue
            old = Message.decode(data)
            fresh = Message(queue_name=QUEUE_NAME, actor_name=old.actor_name, args=old.args, kwargs=old.kwargs,
                            options={}, message_id=old.message_id, message_timestamp=old.message_timestamp)
            try:
                self.broker.enqueue(fresh)
            except Exception:
                self.client.zadd(self._dead, {dead_id: datetime.now(tz=timezone.utc).timestamp() * 1000})
                raise
            self.client.hdel(f"{self._dead}.msgs", dead_id)
            self.client.delete(self._note_key(dead_id))
            count += 1
        return count


def job_for(function_name: str, request: BoltRequest) -> dict[str, Any]:
    """What a worker needs to run `function_name` for `request` as this process would have: only
    the body and headers (the `ack=` step's context stays here), and for listings the function's
    name and the workspace."""
    if request.mode == "http":
        raw = request.raw_body
    else:  # Socket Mode requests carry the parsed payload; JSON is what Bolt parses back
        raw = json.dumps(request.body)
    headers = lazy_only_headers(request, function_name, keep=KEPT_HEADERS)
    team = request.context.team_id or request.context.enterprise_id
    return {"body": raw, "headers": headers, "function": function_name, "team": team}


class QueueLazyListenerRunner(LazyListenerRunner):
    """Bolt's lazy runner with a task queue: `start` enqueues (synchronously: the job is in Redis
    before the request is answered), `run` runs the function where the worker dispatched the job."""

    def __init__(self, queue: TaskQueue, logger: logging.Logger):
        self.queue = queue
        self.logger = logger

    def start(self, function: Callable[..., None], request: BoltRequest) -> None:
        if ack_step_failed(request):
            return  # answered 5xx: Slack delivers it again, and it is enqueued then
        # Bolt's runner names the function on the copy of the request it hands over: the name the
        # worker's lazy-only dispatch looks the function up by.
        name = request.lazy_function_name or function.__name__
        self.queue.send(job_for(name, request))
        metrics.job_enqueued(name)

    def run(self, function: Callable[..., None], request: BoltRequest) -> None:
        outcome: Optional[JobOutcome] = getattr(request, OUTCOME, None)
        if outcome is None:
            # Not a job (a signed request that asked for lazy_only itself): Bolt's behaviour.
            super().run(function, request)
            return
        outcome.ran = True
        try:
            call_lazy_function(function, request, self.logger)
        except Exception as error:  # noqa: BLE001 - handed to the worker, which retries or dead-letters
            # Not raised through Bolt: App.dispatch would hand it to the app's error handler,
            # which logs it as unhandled and answers a 500 the worker could not tell apart.
            outcome.error = error


def attach(app: App, settings: Settings) -> Optional[TaskQueue]:
    """Run this app's `lazy=` functions from the task queue when TASK_QUEUE_URL is set (None:
    Bolt's threads, as configured). Whatever the listener runner is, only its
    `lazy_listener_runner` changes. Called once by `create_app`."""
    if not settings.task_queue_url:
        return None
    queue = TaskQueue(settings.task_queue_url)
    runner = app.listener_runner
    runner.lazy_listener_runner = QueueLazyListenerRunner(queue, runner.logger)
    app.task_queue = queue  # type: ignore[attr-defined]  # /healthz reports it; web.py answers after enqueueing
    features = getattr(app, "features", None)
    if features is not None:
        # A job is retried: a live lease on its work sends it back to the queue for later.
        features.deliveries.retried = True
    return queue


def queue_health(app: App) -> Optional[bool]:
    """For /healthz: None without a task queue, else whether Redis answers."""
    queue: Optional[TaskQueue] = getattr(app, "task_queue", None)
    return None if queue is None else queue.ping()
