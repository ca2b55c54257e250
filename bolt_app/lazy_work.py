"""Where `lazy=` functions run when no task queue is configured: Bolt's threads, in this process.

Installed the way Bolt's AWS Lambda adapter installs its runner
(`app.listener_runner.lazy_listener_runner = ...`). One addition to Bolt's thread runner: a lazy
function whose Web API call Slack refused with `token_expired` runs once more. The token was
refreshed when Slack refused it (tokens/rejections.py); the second run is dispatched through the
app as a lazy-only request, so authorize hands it the new token.

The threads run BACKGROUND_NICE below the request threads' CPU priority (Linux), so a burst of
replies does not slow the answers Slack waits for.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import threading
from concurrent.futures import Executor
from typing import Any, Callable, Sequence

from slack_bolt import App, BoltRequest
from slack_bolt.kwargs_injection import build_required_kwargs
from slack_bolt.lazy_listener import ThreadLazyListenerRunner
from slack_bolt.util.utils import get_arg_names_of_callable
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from bolt_app.tokens.installed import WorkspaceNotInstalled

logger = logging.getLogger(__name__)

LAZY_ONLY_HEADER = "x-slack-bolt-lazy-only"
LAZY_FUNCTION_HEADER = "x-slack-bolt-lazy-function-name"


def call_lazy_function(function: Callable[..., Any], request: BoltRequest, log: logging.Logger) -> None:
    """Call `function` with the arguments Bolt would give it; its exceptions propagate."""
    kwargs = build_required_kwargs(
        logger=log,
        required_arg_names=get_arg_names_of_callable(function),
        request=request,
        response=None,
        this_func=function,
    )
    function(**kwargs)


def ack_step_failed(request: BoltRequest) -> bool:
    """True when the request's `ack=` step failed and Slack was answered 5xx. Bolt starts the lazy
    functions all the same; they must not run, as Slack delivers the request again and they run
    then (run now, they could act on a delivery whose check never happened)."""
    ack = request.context.ack
    return ack is not None and ack.response is not None and ack.response.status >= 500


def lazy_only_headers(request: BoltRequest, function_name: str, keep: Sequence[str] | None = None) -> dict[str, list[str]]:
    """`request`'s headers (all, or those named in `keep` and Slack's `x-slack-*`), marked to run
    only `function_name`, as Bolt's Lambda adapter re-invokes itself."""
    headers = {
        name: list(values) for name, values in request.headers.items()
        if keep is None or name in keep or name.startswith("x-slack-")
    }
    headers[LAZY_ONLY_HEADER] = ["1"]
    headers[LAZY_FUNCTION_HEADER] = [function_name]
    return headers


def lazy_only_request(request: BoltRequest) -> BoltRequest:
    """A fresh request for the same delivery that runs only `request.lazy_function_name`
    (nothing from the first dispatch's context)."""
    headers = lazy_only_headers(request, request.lazy_function_name or "")
    body = request.raw_body if request.mode == "http" else request.body
    return BoltRequest(body=body, query=request.query, headers=headers, mode=request.mode)


def lower_thread_priority(nice: int) -> Callable[[], None]:
    """An executor initializer that lowers each of its threads' CPU priority by `nice`, so lazy work
    yields the CPU to the answers. Linux only: there a thread has a nice value of its own."""

    def initializer() -> None:
        if nice and sys.platform == "linux":
            thread = threading.get_native_id()
            try:
                os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + nice)
            except OSError as error:  # a failing initializer would break the whole pool: run as is
                logger.warning("Lazy threads keep the request threads' CPU priority: %s", error)

    return initializer


class ThreadLazyRunner(ThreadLazyListenerRunner):
    def __init__(self, app: App, executor: Executor):
        super().__init__(logger=logger, executor=executor)
        self.app = app

    def start(self, function: Callable[..., None], request: BoltRequest) -> None:
        if ack_step_failed(request):
            return
        # In the request's log context (its kind and ids: bolt_app/telemetry/context.py).
        self.executor.submit(contextvars.copy_context().run, self._run_in_thread, function, request)

    def _run_in_thread(self, function: Callable[..., None], request: BoltRequest) -> None:
        try:
            call_lazy_function(function, request, self.logger)
        except SlackApiError as error:
            if error.response.get("error") != "token_expired":
                self.logger.error("Lazy function %s failed: %s", request.lazy_function_name, _describe(error))
                return
            self.app.dispatch(lazy_only_request(request))  # its own failure is logged by Bolt
        except WorkspaceNotInstalled as error:  # uninstalled meanwhile: nothing more to do for it
            self.logger.info("Lazy function %s stopped: %s", request.lazy_function_name, error)
        except Exception as error:  # noqa: BLE001 - as Bolt: a lazy function's failure is logged
            # An outage is one line; anything else is a bug, with its traceback.
            outage = isinstance(error, (DBAPIError, PoolTimeoutError))
            self.logger.error("Lazy function %s failed: %s", request.lazy_function_name, _describe(error),
                              exc_info=not outage)


def _describe(error: Exception) -> str:
    if isinstance(error, SlackApiError):
        return f"Slack answered {error.response.get('error')!r}"
    return type(error).__name__


def attach_thread_runner(app: App, executor: Executor) -> None:
    app.listener_runner.lazy_listener_runner = ThreadLazyRunner(app, executor)

