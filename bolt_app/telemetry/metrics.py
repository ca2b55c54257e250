"""The app's Prometheus metrics, and one function per thing worth counting.

The metrics are made on first use, in each process: prometheus_client decides when it is first
imported whether values live in memory or in the files of a multiprocess directory, so a gunicorn
server points `PROMETHEUS_MULTIPROC_DIR` at its directory before anything records
(bolt_app/telemetry/exposition.py). Recording is cheap and always on; only serving them depends on
`METRICS_PORT`.

Every label value comes from a bounded set (bolt_app/telemetry/labels.py). Names:

| metric | labels | what |
|---|---|---|
| `boltapp_slack_requests_total` | kind, name, status | requests on /slack/events by answer status |
| `boltapp_slack_request_duration_seconds` | kind | time from receiving a request to its answer |
| `boltapp_oauth_requests_total` | page, status | install page and OAuth callback hits |
| `boltapp_installs_total` | | installations completed |
| `boltapp_install_failures_total` | reason | callbacks that ended on the failure page |
| `boltapp_uninstalls_total` | | `app_uninstalled` handled |
| `boltapp_token_revocations_total` | token | tokens deleted on `tokens_revoked` (bot, user) |
| `boltapp_slack_api_calls_total` | method, outcome | each Web API answer: ok, Slack's error, http_429, … |
| `boltapp_slack_api_retry_after_seconds` | method | the Retry-After of each 429 |
| `boltapp_token_refreshes_total` | token, outcome | refresh attempts (refreshed, done_elsewhere, …) |
| `boltapp_token_refresh_lock_wait_seconds` | token | time waiting for the installation's row lock |
| `boltapp_jobs_enqueued_total` | function | `lazy=` work put on the task queue |
| `boltapp_jobs_total` | function, outcome | jobs run by workers: done, retried, failed |
| `boltapp_job_duration_seconds` | function | time a worker spent on a job |
| `boltapp_queue_depth`, `boltapp_queue_dead_letters` | | read from Redis at scrape time (workers) |
| `boltapp_db_errors_total` | kind | database errors (operational, integrity, …, pool_timeout) |
| `boltapp_db_pool_checked_out` | | connections in use, summed over live processes |
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Iterator, Optional

from bolt_app.telemetry import labels

PREFIX = "boltapp"
# Slack waits 3 s for an answer: the buckets are fine around it.
ANSWER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 3.0, 5.0, 10.0)
RETRY_AFTER_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 900)
LOCK_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
INSTALL_FAILURE_REASONS = frozenset({
    "access_denied", "invalid_browser", "invalid_state", "missing_state", "missing_code", "invalid_code",
    "storage_error", "already_used", "server_error", "invalid_team_for_non_distributed_app", "invalid_scope",
})


class Metrics:
    """The metric objects of this process."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

        disable_created_metrics()  # no `_created` series (multiprocess mode has none either)
        # A registry of our own: nothing else in the process (or a test) registers into it.
        self.registry = registry = CollectorRegistry(auto_describe=True)

        def counter(name: str, text: str, names: tuple[str, ...] = ()) -> Any:
            return Counter(f"{PREFIX}_{name}", text, names, registry=registry)

        def histogram(name: str, text: str, names: tuple[str, ...], buckets: tuple) -> Any:
            return Histogram(f"{PREFIX}_{name}", text, names, buckets=buckets, registry=registry)

        self.slack_requests = counter("slack_requests", "Requests on /slack/events, by kind and answer status.",
                                      ("kind", "name", "status"))
        self.slack_request_seconds = histogram(
            "slack_request_duration_seconds", "Time from receiving a Slack request to its answer.", ("kind",),
            ANSWER_BUCKETS)
        self.oauth_requests = counter("oauth_requests", "Install page and OAuth callback requests.", ("page", "status"))
        self.installs = counter("installs", "Installations completed (OAuth callback success).")
        self.install_failures = counter("install_failures", "OAuth callbacks that ended on the failure page.",
                                        ("reason",))
        self.uninstalls = counter("uninstalls", "app_uninstalled events handled (tokens and data deleted).")
        self.revocations = counter("token_revocations", "Tokens deleted on tokens_revoked events.", ("token",))
        self.api_calls = counter("slack_api_calls", "Web API answers, by method and outcome.", ("method", "outcome"))
        self.retry_after = histogram("slack_api_retry_after_seconds", "Retry-After of Web API answers with HTTP 429.",
                                     ("method",), RETRY_AFTER_BUCKETS)
        self.refreshes = counter("token_refreshes", "Token refresh attempts, by token kind and outcome.",
                                 ("token", "outcome"))
        self.refresh_lock_wait = histogram(
            "token_refresh_lock_wait_seconds",
            "Time a refresh waited for the installation's row lock (another process's refresh holds it).",
            ("token",), LOCK_WAIT_BUCKETS)
        self.jobs_enqueued = counter("jobs_enqueued", "lazy= work put on the task queue.", ("function",))
        self.jobs = counter("jobs", "Jobs run by queue workers, by outcome (done, retried, failed).",
                            ("function", "outcome"))
        self.job_seconds = histogram("job_duration_seconds", "Time a queue worker spent on a job.", ("function",),
                                     JOB_BUCKETS)
        self.db_errors = counter("db_errors", "Database errors, by kind.", ("kind",))
        self.pool_checked_out = Gauge(f"{PREFIX}_db_pool_checked_out",
                                      "Database connections checked out of the pool (summed over live processes).",
                                      registry=registry, multiprocess_mode="livesum")


_metrics: Optional[Metrics] = None
_lock = threading.Lock()


def get() -> Metrics:
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = Metrics()
    return _metrics


def built() -> bool:
    """Whether this process has made its metrics (prometheus_client's storage is then decided)."""
    return _metrics is not None


# ----------------------------------------------------------------------------- Slack requests


def slack_request(kind: str, name: str, status: int, seconds: float) -> None:
    m = get()
    m.slack_requests.labels(kind, name, str(status)).inc()
    m.slack_request_seconds.labels(kind).observe(seconds)


def oauth_request(page: str, status: int) -> None:
    get().oauth_requests.labels(page, str(status)).inc()


def installed() -> None:
    get().installs.inc()


def install_failed(reason: Any) -> None:
    get().install_failures.labels(reason if reason in INSTALL_FAILURE_REASONS else labels.OTHER).inc()


def uninstalled() -> None:
    get().uninstalls.inc()


def tokens_revoked(*, bot: int, user: int) -> None:
    m = get()
    if bot:
        m.revocations.labels("bot").inc(bot)
    if user:
        m.revocations.labels("user").inc(user)


# ----------------------------------------------------------------------------- Web API


def api_call(method: str, outcome: str, retry_after: Optional[float] = None) -> None:
    m = get()
    m.api_calls.labels(method, outcome).inc()
    if retry_after is not None:
        m.retry_after.labels(method).observe(retry_after)


# ----------------------------------------------------------------------------- token refresh


class RefreshAttempt:
    """One single-flight refresh (bolt_app/tokens/rotation.py). The code sets `outcome` where it
    knows it: refreshed, or done_elsewhere (another caller refreshed while this one waited for the
    lock); an exception leaving the block names it otherwise: needs_reinstall, failed (Slack did
    not refresh), unavailable (the database or its lock). "skipped": nothing to refresh."""

    def __init__(self, token: str):
        self.token = token
        self.outcome = "skipped"

    def lock_acquired(self, waited_seconds: float) -> None:
        get().refresh_lock_wait.labels(self.token).observe(waited_seconds)


@contextlib.contextmanager
def token_refresh(token: str) -> Iterator[RefreshAttempt]:
    attempt = RefreshAttempt(token)
    try:
        yield attempt
    except BaseException as error:
        attempt.outcome = _refresh_failure(error)
        raise
    finally:
        get().refreshes.labels(token, attempt.outcome).inc()


def _refresh_failure(error: BaseException) -> str:
    from bolt_app.tokens.rotation import InstallationNeedsReinstall, TokensTemporarilyUnavailable

    if isinstance(error, InstallationNeedsReinstall):
        return "needs_reinstall"
    if isinstance(error, TokensTemporarilyUnavailable):
        from sqlalchemy.exc import DBAPIError

        return "unavailable" if isinstance(error.__context__, DBAPIError) else "failed"
    return "error"


# ----------------------------------------------------------------------------- background jobs


def job_enqueued(function: str) -> None:
    get().jobs_enqueued.labels(labels.function_name(function)).inc()


def job_finished(function: str, outcome: str, seconds: float) -> None:
    m = get()
    m.jobs.labels(function, outcome).inc()
    m.job_seconds.labels(function).observe(seconds)


# ----------------------------------------------------------------------------- database


def db_error(kind: str) -> None:
    get().db_errors.labels(kind).inc()


def pool_checked_out(change: int) -> None:
    get().pool_checked_out.inc(change)


def monotonic() -> float:
    return time.perf_counter()
