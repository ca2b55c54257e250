"""`METRICS_PORT`: where Prometheus reads the metrics. Unset: nothing is served (metrics are still
counted in memory, which costs next to nothing).

- gunicorn (`python main.py`): the master makes a fresh private directory (mode 0700) for
  prometheus_client's multiprocess files before anything records and before it forks; every
  worker writes its values there; the master serves `GET /metrics` from a small HTTP server on a
  thread of its own, summing the files of every worker, dead ones included for counters and
  histograms (a restarted worker does not reset them). gunicorn's `child_exit` hook marks a
  worker dead (its gauge files go), and the directory is removed when the master exits.
  Directories left by a master that was killed are removed at the next start.
- `python main.py worker` and Socket Mode (one process each): the same HTTP server, serving that
  process's metrics, plus, in a worker, the queue's depth read from Redis at scrape time.

The server binds HOST like the app, never the Slack-facing port: anything but `GET /metrics` is
404 there, and the app's port has no /metrics route.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Optional

from bolt_app.startup import StartupError
from bolt_app.telemetry import metrics

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DIR_PREFIX = "boltapp-metrics-"
METRICS_PATH = "/metrics"


# ----------------------------------------------------------------------------- the directory


def use_private_directory(parent: Optional[str] = None) -> str:
    """Called once in the gunicorn master before anything records: remove directories of masters
    that are gone, make a fresh one, and point prometheus_client at it."""
    parent = parent or tempfile.gettempdir()
    remove_stale_directories(parent)
    path = tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-", dir=parent)
    os.environ[MULTIPROC_ENV] = path
    os.environ.pop(MULTIPROC_ENV.lower(), None)
    from prometheus_client import values

    if metrics.built() or values.ValueClass is values.MutexValue:
        # prometheus_client chose in-memory values when first imported: a bug in the start-up order.
        raise RuntimeError("prometheus_client was imported before its multiprocess directory was set")
    return path


def in_memory_only() -> None:
    """One process, or metrics off: values in memory, whatever the environment says."""
    os.environ.pop(MULTIPROC_ENV, None)
    os.environ.pop(MULTIPROC_ENV.lower(), None)


def remove_stale_directories(parent: str) -> None:
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        if not name.startswith(DIR_PREFIX):
            continue
        pid_text = name[len(DIR_PREFIX):].split("-", 1)[0]
        path = os.path.join(parent, name)
        try:
            owned = os.stat(path).st_uid == os.getuid()
        except OSError:
            continue
        if owned and pid_text.isdigit() and not _alive(int(pid_text)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ----------------------------------------------------------------------------- collectors


class QueueCollector:
    """The task queue's depth and dead letters, read from Redis when Prometheus scrapes (nothing
    when Redis does not answer within its short timeout: the scrape still succeeds)."""

    def __init__(self, queue: Any):
        self.queue = queue

    def describe(self) -> list:
        return []

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            waiting, dead = self.queue.waiting(), self.queue.dead_letters()
        except Exception as error:  # noqa: BLE001 - a scrape must not fail on Redis
            logger.debug("Queue depth not read: %s", type(error).__name__)
            return []
        return [
            GaugeMetricFamily(f"{metrics.PREFIX}_queue_depth",
                              "Jobs on the task queue not finished yet (waiting, delayed for a retry, or running).",
                              value=waiting),
            GaugeMetricFamily(f"{metrics.PREFIX}_queue_dead_letters",
                              "Jobs that failed for good and are kept for `python main.py jobs retry`.", value=dead),
        ]


def multiprocess_registry(path: str) -> Any:
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    return registry


def process_registry(*extra: Any) -> Any:
    """This process's metrics, and any other collectors."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(metrics.get().registry)
    for collector in extra:
        registry.register(collector)
    return registry


# ----------------------------------------------------------------------------- the HTTP server


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    server_version = "metrics"

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        if self.path.split("?", 1)[0] != METRICS_PATH:
            self._send(404, b"Not Found\n", "text/plain; charset=utf-8", body)
            return
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        try:
            output = generate_latest(self.server.registry)
        except Exception:  # noqa: BLE001 - e.g. a worker's file half written: say so, keep serving
            logger.exception("Metrics could not be collected")
            self._send(500, b"Metrics could not be collected\n", "text/plain; charset=utf-8", body)
            return
        self._send(200, output, CONTENT_TYPE_LATEST, body)

    def _send(self, status: int, payload: bytes, content_type: str, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
        pass  # a scrape every few seconds is not worth a log line


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    registry: Any


class MetricsServer:
    def __init__(self, host: str, port: int, registry: Any):
        self.host, self.port, self.registry = host, port, registry
        self.httpd: Optional[_Server] = None
        self.thread: Optional[threading.Thread] = None

    def start(self) -> "MetricsServer":
        try:
            family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        except socket.gaierror:
            raise StartupError(f"HOST: {self.host!r} is not a name or address of this machine.") from None
        server_class: Callable[..., _Server] = type("_MetricsServer", (_Server,), {"address_family": family})
        try:
            httpd = server_class((self.host, self.port), _Handler)
        except OSError as error:
            raise StartupError(
                f"METRICS_PORT: cannot listen on {self.host}:{self.port} ({error.strerror or error}). "
                "Set METRICS_PORT to a free port, or unset it to serve no metrics."
            ) from None
        httpd.registry = self.registry
        self.httpd = httpd
        self.thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.5},
                                       name="metrics-http", daemon=True)
        self.thread.start()
        logger.info("Metrics on http://%s:%s%s", self.host, self.port, METRICS_PATH)
        return self

    def close_inherited_socket(self) -> None:
        """In a forked child: the listening socket is the master's, not this process's."""
        if self.httpd is not None:
            self.httpd.socket.close()

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


# ----------------------------------------------------------------------------- gunicorn


class GunicornMetrics:
    """The gunicorn master's side: the directory, the server, the hooks."""

    def __init__(self, host: str, port: int):
        self.master = os.getpid()
        self.directory = use_private_directory()
        try:
            self.server = MetricsServer(host, port, multiprocess_registry(self.directory)).start()
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise

    def post_fork(self) -> None:
        self.server.close_inherited_socket()

    def child_exit(self, pid: int) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, self.directory)

    def on_exit(self) -> None:
        if os.getpid() != self.master:
            return
        self.server.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def serve_process_metrics(host: str, port: Optional[int], *extra: Any) -> Optional[MetricsServer]:
    """One process (queue worker, Socket Mode): its own metrics on METRICS_PORT, if set (call
    `in_memory_only` first, before anything records)."""
    if not port:
        return None
    return MetricsServer(host, port, process_registry(*extra)).start()
