"""Bolt `lazy=` functions (replies, Web API work after the answer) in separate, lower-priority
processes of each web worker.

Slack's 3-second deadline is on the answer, not on the reply. On threads of the web process, the
replies compete with the answers for the GIL and the cores: under a burst, every reply slows
the answers behind it. In child processes at a lower CPU priority (nice), the answers come first
and the replies catch up after the burst.

- Each web worker (gunicorn process) spawns `LAZY_PROCESSES` children at nice +15 (spawned, not
  forked: the worker has threads). Each builds the same app (`create_app`: its own database
  pool, authorize cache and token service) and runs its jobs on a thread pool.
- A job is what Bolt's own Lambda runner re-sends: the raw body and headers, and the name of the
  lazy function, written down a pipe by the request thread once the answer is out. It also
  carries the plain values (str, int, float, bool, None) that the `ack=` step put in the context,
  for example app_mention's decision. The child dispatches it through Bolt with `lazy_only`
  set: authorize, matching, then only that function.
- An event declared with `lifecycle.answer_first` (app_mention) goes further: its first delivery,
  once signed, well formed and from a workspace known to be installed (resolved by this worker
  within the authorize cache's `known_seconds`, or now), is answered 200 by the worker without a
  Bolt dispatch and handed over whole (a slot is reserved before the answer, and the request is
  written once the answer is out: `reserve`, `deliver`); the child dispatches it (ack step, then
  its lazy functions in the same job thread). Redeliveries, unknown workspaces, a database that
  cannot confirm the workspace, and full children take the usual path.
- A job whose dispatch answers 503 (database or tokens unavailable, before anything ran) is
  tried again for up to a minute (`RETRY_FOR_SECONDS`); meanwhile the child flags trouble and
  its worker stops answering first: new events wait for their own dispatch, and a 503 makes
  Slack redeliver them.
- A child holds at most `backlog` jobs (a semaphore the child releases as each one finishes).
  When every child is full, or none is ready, the function runs on the web worker's own threads,
  as it did without children. Nothing is dropped, and a sustained overload slows the answers
  instead of growing a queue without bound.
- A child that dies is restarted (at most once per `RESTART_BACKOFF_SECONDS`); the jobs it held
  are lost, and their count is logged.
- On shutdown (gunicorn's worker exit) the worker closes its end of each pipe: the child finishes
  what it holds and exits. A worker that dies closes its pipes too, with the same effect.
  Children ignore SIGINT and SIGTERM (a terminal's Ctrl-C or systemd signal the whole group):
  their worker ends them once it has handed over its last job.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Callable, Optional

from slack_bolt import App, BoltRequest
from slack_bolt.lazy_listener import LazyListenerRunner
from slack_bolt.util.utils import get_name_for_callable

from bolt_app.lifecycle import ACK_ADDED, RETRY_STATUS, InlineLazyRunner
from bolt_app.settings import Settings

logger = logging.getLogger(__name__)

# Answers first: under CPU contention CFS gives a nice-15 task about 1/28 of a web thread's share
# (one alternated set of benchmark runs: +10 answered 0.43-0.46x the floor's rate, +15 0.52-0.53x,
# +19 0.44-0.50x). With idle CPU the children run at full speed whatever their nice value.
NICE_INCREMENT = 15
# Jobs a child holds before its worker runs new ones on its own threads: a benchmark burst (3000
# mentions over 4 workers) fits. Under sustained CPU saturation these wait until the load drops.
BACKLOG_PER_PROCESS = 1000
FULL_WARNING_INTERVAL_SECONDS = 60.0
PIPE_BYTES = 1 << 20
RESTART_BACKOFF_SECONDS = 5.0
# A job whose dispatch answered 503 (database or tokens unavailable: nothing ran yet) is tried
# again, holding its slot, after 0.5, 1, 2, 4, then every 5 s, for up to a minute: the worker
# answered already, so Slack would not redeliver it.
RETRY_FOR_SECONDS = 60.0
RETRY_DELAY_CAP_SECONDS = 5.0
# Meanwhile, and this long after the last such failure, the worker's answers wait for a dispatch
# of their own again (a 503 then makes Slack redeliver) instead of being answered first.
TROUBLE_SECONDS = 30.0
WATCH_INTERVAL_SECONDS = 0.2
PLAIN_VALUES = (str, int, float, bool, type(None))

_SPAWN = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class LazyJob:
    # None: the whole request, answered already by the web worker (lifecycle.answer_first).
    function_name: Optional[str]
    body: str
    headers: dict[str, Any]
    handoff: dict[str, Any]

    def encode(self) -> bytes:
        # A plain pickle of a tuple: Connection.send's pickler copies its reducer table per call.
        fields = (self.function_name, self.body, self.headers, self.handoff)
        return pickle.dumps(fields, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def decode(cls, data: bytes) -> "LazyJob":
        return cls(*pickle.loads(data))


def job_for(function: Callable[..., Any], request: BoltRequest) -> LazyJob:
    """What a child needs to run `function` for `request` as this process would have."""
    handoff = {}
    for key in getattr(request, ACK_ADDED, ()):
        value = request.context.get(key)
        if isinstance(value, PLAIN_VALUES):
            handoff[key] = value
        else:
            _warn_once(key)
    return LazyJob(get_name_for_callable(function), request.raw_body, request.headers, handoff)


def request_job(request: BoltRequest) -> LazyJob:
    """The whole request, for a child to dispatch through Bolt after the worker answered it."""
    return LazyJob(None, request.raw_body, request.headers, {})


_warned: set[str] = set()


def _warn_once(key: str) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(
            "context[%r], set by an ack= step, is not a plain value (str, int, float, bool, None): "
            "lazy functions running in a lazy process do not see it", key,
        )


# --------------------------------------------------------------------------- the child process


def child_main(settings: Settings, jobs: Connection, slots: Any, ready: Any, trouble: Any, threads: int) -> None:
    """A lazy process: build the app, then run jobs until the web worker closes its end of the
    pipe (on shutdown, or because it died)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.nice(NICE_INCREMENT)
    except OSError:  # not permitted here: run at the parent's priority
        pass
    from bolt_app.app import create_app
    from bolt_app.logs import configure_logging
    from bolt_app.server import freeze_startup_objects

    configure_logging(settings.log_level, settings.secrets)
    app = create_app(settings)
    runner = app._listener_runner
    # A job's lazy= functions run in its own thread, so its slot is held until they finished.
    runner.lazy_listener_runner = InlineLazyRunner(logger=runner.logger, executor=runner.listener_executor)
    freeze_startup_objects()
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lazy")
    ready.set()
    while True:
        try:
            job = LazyJob.decode(jobs.recv_bytes())
        except EOFError:
            break
        executor.submit(run_job, app, job, slots, trouble)
    executor.shutdown(wait=True)
    app.engine.dispose()


def run_job(app: App, job: LazyJob, slots: Any, trouble: Any) -> None:
    what = f"Lazy function {job.function_name}" if job.function_name else "Request answered by the web worker"
    try:
        give_up_at = time.monotonic() + RETRY_FOR_SECONDS
        delay = 0.5
        while True:
            response = app.dispatch(_request(job))
            if response.status != RETRY_STATUS:
                break
            trouble.value = time.time() + TROUBLE_SECONDS
            if time.monotonic() + delay > give_up_at:
                break
            logger.warning("%s not run yet (database or tokens unavailable); trying again in %.1f s", what, delay)
            time.sleep(delay)
            delay = min(2 * delay, RETRY_DELAY_CAP_SECONDS)
        if response.status != 200:
            logger.warning("%s not run: dispatch answered %s", what, response.status)
    except Exception:  # noqa: BLE001 - one job's failure must not end the process
        logger.exception("%s failed", what)
    finally:
        slots.release()


def _request(job: LazyJob) -> BoltRequest:
    request = BoltRequest(body=job.body, headers=job.headers, context=dict(job.handoff))
    if job.function_name is not None:
        request.lazy_only = True
        request.lazy_function_name = job.function_name
    return request


# --------------------------------------------------------------------------- the web worker's side


class LazyProcess:
    """One lazy process as its web worker sees it: the process, the pipe its jobs go down, its
    free slots."""

    def __init__(self, settings: Settings, threads: int, backlog: int):
        self.backlog = backlog
        reader, self.jobs = _SPAWN.Pipe(duplex=False)
        _enlarge_pipe(self.jobs)
        self._write_lock = threading.Lock()
        self.slots = _SPAWN.BoundedSemaphore(backlog)
        self.ready = _SPAWN.Event()
        # Until when (time.time()) the child's jobs meet an unavailable database: a plain shared
        # double, read on every hand-over without a lock.
        self.trouble = _SPAWN.Value("d", 0.0, lock=False)
        self.accepting = False  # set by the pool's watcher once the child is ready and alive
        self.started_at = time.monotonic()
        self.process = _SPAWN.Process(
            target=child_main, args=(settings, reader, self.slots, self.ready, self.trouble, threads),
            name="bolt-app-lazy",
        )
        self.process.start()
        # Only the child reads: once it is gone, a write fails at once instead of blocking.
        reader.close()

    def try_reserve(self) -> bool:
        """Take one of the child's slots (without waiting)."""
        return self.slots.acquire(block=False)

    def cancel_reservation(self) -> None:
        """Give back a slot taken with `try_reserve` that no job will use."""
        self.slots.release()

    def send_reserved(self, job: LazyJob) -> bool:
        """Write a job into a slot taken with `try_reserve`; the slot is given back on failure."""
        try:
            # Written by the request thread itself (a multiprocessing.Queue would wake its feeder
            # thread for every job, one more thread contending for the worker's GIL).
            data = job.encode()
            with self._write_lock:
                self.jobs.send_bytes(data)
        except OSError:  # the child died (broken pipe) or the pipe is closed
            self.slots.release()
            return False
        return True

    def held(self) -> Optional[int]:
        """Jobs handed over and not finished (None where the platform cannot tell)."""
        try:
            return self.backlog - self.slots.get_value()
        except NotImplementedError:  # macOS
            return None

    def end(self) -> None:
        """No more jobs: the child finishes the ones it has, then exits."""
        with self._write_lock:
            self.jobs.close()


def _enlarge_pipe(connection: Connection) -> None:
    """Room for a burst of jobs (Linux: 1 MiB, the unprivileged maximum, instead of 64 KiB), so a
    write waits for the child to read only when that much is queued."""
    try:
        import fcntl

        fcntl.fcntl(connection.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except (ImportError, OSError):
        pass


class LazyProcessPool:
    """A web worker's lazy processes: hands jobs to them, restarts the ones that die, and ends
    them on shutdown after they finished their jobs."""

    def __init__(self, settings: Settings, *, processes: int, threads: int, backlog: int = BACKLOG_PER_PROCESS):
        self.settings = settings
        self.threads = threads
        self.backlog = backlog
        self.children: list[LazyProcess] = []
        # Counters for logs and tests (increments from request threads may race: approximate).
        self.handed_over = 0
        self.answered_first = 0  # whole requests answered first and handed over (deliver)
        self.ran_here = 0  # no child could take the job: it ran on the web worker's threads
        self.restarts = 0
        self._next = 0
        self._warned_full_at = -FULL_WARNING_INTERVAL_SECONDS
        self._processes = processes
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="lazy-process-watch", daemon=True)

    def start(self) -> "LazyProcessPool":
        self.children = [LazyProcess(self.settings, self.threads, self.backlog) for _ in range(self._processes)]
        self._watcher.start()
        return self

    def submit(self, job: LazyJob) -> bool:
        """True when a child took the lazy function's job; False when the caller must run it itself."""
        taken, full = self._offer(job)
        if taken:
            self.handed_over += 1
            return True
        self.ran_here += 1
        if full and time.monotonic() - self._warned_full_at > FULL_WARNING_INTERVAL_SECONDS:
            self._warned_full_at = time.monotonic()
            logger.warning("Lazy processes full (%d jobs each): running lazy functions on the web worker's threads "
                           "(%d so far in this worker)", self.backlog, self.ran_here)
        return False

    def in_trouble(self) -> bool:
        """True while a child's jobs recently met an unavailable database."""
        now = time.time()
        return any(child.trouble.value > now for child in self.children)

    def reserve(self) -> Optional[LazyProcess]:
        """A child holding a slot for a whole request, taken before the request is answered
        (None: the caller dispatches it itself). `deliver` writes the request once answered."""
        return self._reserve()[0]

    def deliver(self, child: LazyProcess, request: BoltRequest) -> bool:
        """Write an answered request into the slot `reserve` took. False when the child died
        meanwhile: the caller then dispatches the request itself."""
        sent = child.send_reserved(request_job(request))
        if sent:
            self.answered_first += 1
        return sent

    def _offer(self, job: LazyJob) -> tuple[bool, bool]:
        """(a child took the job, some child was full)."""
        child, full = self._reserve()
        # A child that died since the watcher last looked refuses the write (its end of the pipe
        # closed with it), and the job runs on the caller's threads.
        return child is not None and child.send_reserved(job), full

    def _reserve(self) -> tuple[Optional[LazyProcess], bool]:
        """(a ready child with a slot taken for the caller, some child was full)."""
        children = self.children
        full = False
        for offset in range(len(children)):
            index = (self._next + offset) % len(children)
            child = children[index]
            if child.accepting:
                if child.try_reserve():
                    self._next = index + 1
                    return child, full
                full = True
        return None, full

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL_SECONDS):
            for index, child in enumerate(self.children):
                if child.process.is_alive():
                    if not child.accepting and child.ready.is_set():
                        child.accepting = True
                        logger.info("Lazy process %s ready (web worker %s)", child.process.pid, os.getpid())
                    continue
                child.accepting = False
                if time.monotonic() - child.started_at < RESTART_BACKOFF_SECONDS:
                    continue  # dying at start-up (configuration, database): do not spin
                held = child.held()
                logger.error(
                    "Lazy process %s exited with code %s; %s lazy function(s) it held are lost; starting another",
                    child.process.pid, child.process.exitcode, "an unknown number of" if held is None else held,
                )
                child.end()
                if not self._stop.is_set():
                    self.children[index] = LazyProcess(self.settings, self.threads, self.backlog)
                    self.restarts += 1

    def close(self, timeout: float) -> None:
        """Stop handing over jobs, let every child finish the ones it holds, and end it."""
        self._stop.set()
        if self._watcher.is_alive():
            self._watcher.join()
        logger.info("Lazy processes of web worker %s: %d request(s) answered first, %d lazy function(s) handed over, "
                    "%d run on the worker's threads, %d restart(s)", os.getpid(), self.answered_first,
                    self.handed_over, self.ran_here, self.restarts)
        deadline = time.monotonic() + timeout
        for child in self.children:
            child.accepting = False
            child.end()
        for child in self.children:
            child.process.join(max(0.0, deadline - time.monotonic()))
            if child.process.is_alive():
                logger.warning(
                    "Lazy process %s still busy after %.0f s; stopping it (%s lazy function(s) unfinished)",
                    child.process.pid, timeout, child.held(),
                )
                child.process.terminate()
                child.process.join(5)


class ProcessLazyRunner(LazyListenerRunner):
    """Bolt's lazy runner for the web worker: hands each `lazy=` function to a lazy process, or
    runs it on the local (thread) runner when none can take it."""

    def __init__(self, pool: LazyProcessPool, local: LazyListenerRunner):
        self.logger = local.logger
        self.pool = pool
        self.local = local

    def start(self, function: Callable[..., None], request: BoltRequest) -> None:
        # (Bolt starts lazy functions only for requests that are not lazy_only: those it runs.)
        if not self.pool.submit(job_for(function, request)):
            self.local.start(function, request)

    def run(self, function: Callable[..., None], request: BoltRequest) -> None:
        self.local.run(function, request)


_pools: list[LazyProcessPool] = []


def attach(app: App, settings: Settings) -> Optional[LazyProcessPool]:
    """Run this app's `lazy=` functions in `settings.lazy_processes` lazy processes (none: threads)."""
    if settings.lazy_processes < 1:
        return None
    runner = app._listener_runner
    pool = LazyProcessPool(settings, processes=settings.lazy_processes, threads=2 * settings.web_threads).start()
    runner.lazy_listener_runner = ProcessLazyRunner(pool, runner.lazy_listener_runner)
    app.lazy_pool = pool  # type: ignore[attr-defined]  # the web layer hands answer-first events to it
    if not _pools:
        atexit.register(close_all)  # when the server's own shutdown hook did not run
    _pools.append(pool)
    return pool


def close_all(timeout: float = 15.0) -> None:
    """End this process's lazy processes once they finished their jobs (gunicorn's worker_exit)."""
    while _pools:
        _pools.pop().close(timeout)
