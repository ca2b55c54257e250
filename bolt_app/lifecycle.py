"""Events API deliveries are acknowledged only once their work could be done.

Bolt (with `process_before_response=False`) acknowledges an event *before* its listener runs.
A listener that needs the database (the idempotency claim of a mention, a token refresh, an
uninstall) and finds it unavailable then fails after Slack already has its 200: Slack never
redelivers, and the event is lost — a reply never sent, an uninstalled workspace's tokens and
data kept forever.

Two changes close that, and nothing else about listeners changes:

1. `EventListenerRunner` runs an event's listener first and answers when the listener calls
   `ack()` — after its database work, before its Web API calls — or when it finished, up to
   `ack_deadline_seconds` (Slack waits 3 s). A listener that failed before acknowledging because
   the database or its tokens were unavailable (the app's error handler turns that into 503) is
   answered 503, so Slack redelivers it; listener idempotency (features.idempotency) makes the
   redelivery safe. Any other listener failure is acknowledged as before (retrying a bug only
   repeats it, and Slack disables apps whose deliveries keep failing). A listener still running
   at the deadline is acknowledged then (its outcome is only logged), as Bolt would have done.
   Commands, actions, views and shortcuts are unchanged: their listeners call `ack()` themselves.
   An event whose first delivery needs nothing durable before its answer can say so
   (`answer_first`): with lazy processes it is then answered before any dispatch, and a
   lazy process runs it (see bolt_app/lazy_processes.py).
2. `app_uninstalled` / `tokens_revoked` are handled in a global middleware, before any
   acknowledgement (replaces `app.enable_token_revocation_listeners()`), and org-wide installs
   are keyed by `context.is_enterprise_install`: Bolt's stock listeners pass `context.team_id`,
   which names the org-wide install only when Slack sends `team_id: null` in the authorizations.
   The deletes are idempotent, so a redelivery is harmless.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, Callable, Optional

from slack_bolt import Ack, App, BoltContext, BoltRequest, BoltResponse
from slack_bolt.kwargs_injection import build_required_kwargs
from slack_bolt.lazy_listener.thread_runner import ThreadLazyListenerRunner
from slack_bolt.listener import CustomListener, Listener
from slack_bolt.listener_matcher.builtins import BuiltinListenerMatcher
from slack_bolt.listener.thread_runner import ThreadListenerRunner
from slack_bolt.middleware import Middleware
from slack_bolt.request.payload_utils import (
    to_action, to_command, to_event, to_message, to_options, to_shortcut, to_step, to_view,
)
from slack_bolt.util.utils import get_arg_names_of_callable

from bolt_app.features.idempotency import insert_ignore, processed_deliveries
from bolt_app.storage.installation_store import InstallationStore
from bolt_app.storage.tables import utc_now

logger = logging.getLogger(__name__)

REVOCATION_EVENTS = frozenset({"app_uninstalled", "tokens_revoked"})
# Exceptions that, raised by Bolt's own code while routing a payload, mean the payload is malformed.
MALFORMED_PAYLOAD_ERRORS = (AttributeError, TypeError, KeyError, IndexError, ValueError, RecursionError)
# What the app's error handler answers when the database or tokens are unavailable.
RETRY_STATUS = 503
# A BoltRequest attribute: when the server sets it to a list, `lazy=` functions are appended to it
# instead of started, and the server starts them once the answer has been sent (see defer_lazy).
AFTER_RESPONSE = "after_response"
# A BoltRequest attribute: the context keys the `ack=` step added. Their plain values travel with
# the request when its `lazy=` functions run in another process (see bolt_app/lazy_processes.py).
ACK_ADDED = "ack_added_context_keys"


def defer_lazy(request: BoltRequest) -> list[Callable[[], None]]:
    """Collect this request's `lazy=` starts instead of starting them during dispatch.

    Starting a lazy function wakes a pool thread that then competes for the GIL with the
    request thread still writing the answer; started after the answer is on the wire, the
    same work no longer delays the acknowledgement Slack is waiting for."""
    starts: list[Callable[[], None]] = []
    setattr(request, AFTER_RESPONSE, starts)
    return starts


def describe_location(error: BaseException) -> str:
    """`TypeError at slack_bolt/request/payload_utils.py:27`: enough to act on, no payload values."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{'/'.join(tb.tb_frame.f_code.co_filename.split('/')[-3:])}:{tb.tb_lineno}" if tb is not None else "?"
    return f"{type(error).__name__} at {where}"


def raised_by_bolt_on_payload(error: BaseException) -> bool:
    """A shape error raised inside Bolt's own routing code (not in a listener): the payload is malformed."""
    if not isinstance(error, MALFORMED_PAYLOAD_ERRORS):
        return False
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and "/slack_bolt/" in tb.tb_frame.f_code.co_filename


def is_event_delivery(body: Any) -> bool:
    return isinstance(body, dict) and body.get("type") == "event_callback"


def revocation_event(body: Any) -> dict | None:
    """The event when `body` is an app_uninstalled / tokens_revoked event callback, else None."""
    if not is_event_delivery(body):
        return None
    event = body.get("event")
    if isinstance(event, dict) and event.get("type") in REVOCATION_EVENTS:
        return event
    return None


# --------------------------------------------------------------------------- listeners before the ack


class _SignallingAck(Ack):
    """Bolt's ack for an event, which also tells the waiting request thread to answer now."""

    def __init__(self, signal: threading.Event):
        super().__init__()
        self._signal = signal

    def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        response = super().__call__(*args, **kwargs)
        self._signal.set()
        return response


# --------------------------------------------------------------------------- argument injection

Injected = Callable[[BoltRequest, Optional[BoltResponse], logging.Logger], Any]


def _payload(body: dict) -> Any:
    return (to_options(body) or to_shortcut(body) or to_action(body) or to_view(body) or to_command(body)
            or to_event(body) or to_message(body) or to_step(body) or body)


def _from_context(name: str) -> Injected:
    return lambda req, resp, log: getattr(req.context, name)


# The arguments Bolt's build_required_kwargs offers listeners, each computed the same way, but
# only when asked for: Bolt computes all ~30 (payload extractions, say/respond objects…) for every
# function it calls. tests/test_hot_path.py checks each against Bolt's on real payloads.
INJECTED: dict[str, Injected] = {
    "logger": lambda req, resp, log: log,
    "client": lambda req, resp, log: req.context.client,
    "req": lambda req, resp, log: req,
    "request": lambda req, resp, log: req,
    "resp": lambda req, resp, log: resp,
    "response": lambda req, resp, log: resp,
    "context": lambda req, resp, log: req.context,
    "body": lambda req, resp, log: req.body,
    "options": lambda req, resp, log: to_options(req.body),
    "shortcut": lambda req, resp, log: to_shortcut(req.body),
    "action": lambda req, resp, log: to_action(req.body),
    "view": lambda req, resp, log: to_view(req.body),
    "command": lambda req, resp, log: to_command(req.body),
    "event": lambda req, resp, log: to_event(req.body),
    "message": lambda req, resp, log: to_message(req.body),
    "step": lambda req, resp, log: to_step(req.body),
    "payload": lambda req, resp, log: _payload(req.body),
    **{name: _from_context(name) for name in (
        "ack", "say", "respond", "complete", "fail", "set_status", "set_title", "set_suggested_prompts",
        "save_thread_context", "say_stream")},
}


class ArgumentBuilder:
    """Keyword arguments for one listener function, as Bolt's `build_required_kwargs` builds them.
    The signature is read once; a function that asks for anything beyond `INJECTED` (a context
    key, `args`, `self`) gets Bolt's own builder."""

    def __init__(self, function: Callable[..., Any], logger: logging.Logger):
        self.function = function
        self.logger = logger
        self.arg_names = get_arg_names_of_callable(function)
        self._getters = [(n, INJECTED[n]) for n in self.arg_names] if set(self.arg_names) <= INJECTED.keys() else None

    def __call__(self, request: BoltRequest, response: Optional[BoltResponse]) -> dict[str, Any]:
        if self._getters is None:
            return build_required_kwargs(logger=self.logger, required_arg_names=list(self.arg_names),
                                         request=request, response=response, this_func=self.function)
        return {name: get(request, response, self.logger) for name, get in self._getters}


class StreamlinedListener(CustomListener):
    """Bolt's listener; its `ack=` function's arguments come from an `ArgumentBuilder`."""

    _arguments: ArgumentBuilder

    def run_ack_function(self, *, request: BoltRequest, response: BoltResponse) -> Optional[BoltResponse]:
        return self.ack_function(**self._arguments(request, response))


class LazyRunner(ThreadLazyListenerRunner):
    """Bolt's thread runner for `lazy=` functions; arguments come from an `ArgumentBuilder` made
    once per function (Bolt inspects the signature again for every request)."""

    def __init__(self, logger: logging.Logger, executor: Executor):
        super().__init__(logger=logger, executor=executor)
        self._builders: dict[Callable[..., Any], ArgumentBuilder] = {}

    def _arguments(self, function: Callable[..., Any], request: BoltRequest) -> dict[str, Any]:
        builder = self._builders.get(function)
        if builder is None:
            builder = self._builders[function] = ArgumentBuilder(function, self.logger)
        return builder(request, None)

    def start(self, function: Callable[..., None], request: BoltRequest) -> None:
        self.executor.submit(self.run, function, request)

    def run(self, function: Callable[..., None], request: BoltRequest) -> None:
        """In this thread (a pool thread, or a `lazy_only` request re-dispatched in a lazy process)."""
        try:
            function(**self._arguments(function, request))
        except Exception as error:  # noqa: BLE001 - as Bolt: a lazy function's failure is logged
            self.logger.error(f"Failed to run an internal function ({error})")


class InlineLazyRunner(LazyRunner):
    """Runs `lazy=` functions at once in the calling thread: a lazy process's job thread, whose
    request was answered by its web worker already, so nothing waits for it."""

    def start(self, function: Callable[..., None], request: BoltRequest) -> None:
        self.run(function, request)


class EventListenerRunner(ThreadListenerRunner):
    """Bolt's runner, except that Events API listeners finish (or hit the deadline) before the
    acknowledgement, and a database-unavailable failure is answered 503 instead of 200."""

    ack_deadline_seconds: float = 2.0

    @classmethod
    def replacing(
        cls, runner: ThreadListenerRunner, *, max_workers: Optional[int] = None, lazy_workers: Optional[int] = None
    ) -> "EventListenerRunner":
        """The same runner (handlers, executors) with this behaviour. `max_workers` gives listeners
        their own executor, sized so every request thread waiting on a listener has one to run it;
        `lazy_workers` does the same for `lazy=` functions (Bolt's default shares 5 threads)."""
        executor = runner.listener_executor
        if max_workers is not None:
            executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="bolt-listener")
        lazy = runner.lazy_listener_runner
        if isinstance(lazy, ThreadLazyListenerRunner) and not isinstance(lazy, LazyRunner):
            lazy_executor = lazy.executor
            if lazy_workers is not None:
                lazy_executor = ThreadPoolExecutor(max_workers=lazy_workers, thread_name_prefix="bolt-lazy")
            lazy = LazyRunner(logger=lazy.logger, executor=lazy_executor)
        return cls(
            logger=runner.logger,
            process_before_response=runner.process_before_response,
            listener_error_handler=runner.listener_error_handler,
            listener_start_handler=runner.listener_start_handler,
            listener_completion_handler=runner.listener_completion_handler,
            listener_executor=executor,
            lazy_listener_runner=lazy,
        )

    def run(
        self,
        request: BoltRequest,
        response: BoltResponse,
        listener_name: str,
        listener: Listener,
        starting_time: Optional[float] = None,
    ) -> Optional[BoltResponse]:
        if self.process_before_response or request.lazy_only:
            return super().run(request, response, listener_name, listener, starting_time)
        if listener.lazy_functions:
            return self._run_ack_then_lazy(request, listener_name, listener)
        if not is_event_delivery(request.body):
            if listener.auto_acknowledgement:
                return super().run(request, response, listener_name, listener, starting_time)
            return self._run_until_ack(request, response, listener_name, listener, starting_time)
        if not listener.auto_acknowledgement:
            return super().run(request, response, listener_name, listener, starting_time)

        finished = threading.Event()
        outcome: dict[str, BoltResponse] = {}
        # A listener that calls ack() after its durable (database) work is acknowledged right
        # then; its Web API calls run after the answer, off the ack path.
        request.context["ack"] = _SignallingAck(finished)

        def run_listener() -> None:
            result = BoltResponse(status=200, body="")
            try:
                self.listener_start_handler.handle(request=request, response=result)
                listener.run_ack_function(request=request, response=result)
            except Exception as error:  # noqa: BLE001 - handed to the app's error handler, like Bolt
                result.status = 500
                outcome["failed"] = result
                try:
                    self.listener_error_handler.handle(error=error, request=request, response=result)
                except Exception:  # noqa: BLE001 - the handler itself failed (e.g. on a malformed body)
                    logger.exception("%s failed and so did the error handler", listener_name)
            finally:
                self.listener_completion_handler.handle(request=request, response=result)
                finished.set()

        started = starting_time if starting_time is not None else time.time()
        self.listener_executor.submit(run_listener)
        remaining = self.ack_deadline_seconds - (time.time() - started)
        if finished.wait(max(remaining, 0.05)):
            failed = outcome.get("failed")  # empty when the listener acknowledged and runs on
            if failed is not None and failed.status == RETRY_STATUS:
                return failed  # not acknowledged: Slack redelivers once the database is back
        else:
            logger.warning("%s still running after %.1fs: acknowledged before it finished", listener_name,
                           self.ack_deadline_seconds)
        return BoltResponse(status=200, body="")


    def _run_until_ack(
        self,
        request: BoltRequest,
        response: Optional[BoltResponse],
        listener_name: str,
        listener: Listener,
        starting_time: Optional[float],
    ) -> Optional[BoltResponse]:
        """Commands, actions, views, shortcuts: Bolt's semantics, but the request thread wakes the
        moment the listener calls ack() instead of polling for it every 10 ms."""
        answered = threading.Event()
        ack = _SignallingAck(answered)
        request.context["ack"] = ack

        def run_listener() -> None:
            result = response if response is not None else BoltResponse(status=200, body="")
            try:
                self.listener_start_handler.handle(request=request, response=result)
                listener.run_ack_function(request=request, response=result)
            except Exception as error:  # noqa: BLE001 - handed to the app's error handler, like Bolt
                acknowledged = ack.response is not None
                result.status = 500
                try:
                    self.listener_error_handler.handle(error=error, request=request, response=result)
                except Exception:  # noqa: BLE001 - the handler itself failed
                    logger.exception("%s failed and so did the error handler", listener_name)
                if not acknowledged:
                    ack.response = result  # the failure is the answer (the error handler may make it 503)
            finally:
                self.listener_completion_handler.handle(request=request, response=result)
                answered.set()

        started = starting_time if starting_time is not None else time.time()
        self.listener_executor.submit(run_listener)
        answered.wait(max(listener.ack_timeout - (time.time() - started), 0.05))
        if ack.response is None:
            logger.warning("%s did not call ack() within %s s", listener_name, listener.ack_timeout)
            return None
        return ack.response

    def _run_ack_then_lazy(
        self, request: BoltRequest, listener_name: str, listener: Listener
    ) -> Optional[BoltResponse]:
        """A listener split Bolt's way: `ack=` (decide, durable work) runs here, in the request
        thread, so it never queues behind other requests' slow work; the `lazy=` functions (Web
        API calls, slow database work) start after it and the answer goes out at once."""
        result = BoltResponse(status=200, body="")
        keys_before = set(request.context) | {"ack"}  # Bolt's own, made when the ack step asks for it
        try:
            listener.run_ack_function(request=request, response=result)
        except Exception as error:  # noqa: BLE001 - handed to the app's error handler, like Bolt
            result.status = 500
            try:
                self.listener_error_handler.handle(error=error, request=request, response=result)
            except Exception:  # noqa: BLE001 - the handler itself failed
                logger.exception("%s failed and so did the error handler", listener_name)
            if result.status == RETRY_STATUS:
                return result  # not acknowledged: Slack redelivers once the database is back
            return BoltResponse(status=200, body="")  # a bug: retrying would only repeat it
        answer = request.context.ack.response
        if answer is None and not listener.auto_acknowledgement:
            logger.warning("%s did not call ack()", listener_name)
            return None
        setattr(request, ACK_ADDED, request.context.keys() - keys_before)
        deferred = getattr(request, AFTER_RESPONSE, None)
        for lazy in listener.lazy_functions:
            # Bolt deep-copies the request (client included) for each lazy function; here the
            # request thread is done with it once the answer is returned, so it is handed over.
            if deferred is not None:
                deferred.append(functools.partial(self.lazy_listener_runner.start, function=lazy, request=request))
            else:
                self.lazy_listener_runner.start(function=lazy, request=request)
        return answer or BoltResponse(status=200, body="")


# --------------------------------------------------------------------------- answered before dispatch

ANSWER_FIRST_EVENTS = "answer_first_events"


def answer_first(app: App, event_type: str) -> None:
    """Declare that a first delivery of `event_type` needs nothing done before its answer: not
    even its `ack=` step. With lazy processes, the web worker answers such a delivery (signed,
    well formed, from a workspace `StoreAuthorize.resolves` knows to be installed) with a 200 at
    once and hands the whole request to a lazy process, which dispatches it through Bolt as this
    process would have. A
    redelivery (`X-Slack-Retry-Num`) is dispatched here, before its answer, as any other request:
    its listener may need to claim it first. Declare only events whose first delivery is answered
    200 whatever happens next (app_mention: the reply is claimed and posted after the answer)."""
    app.__dict__.setdefault(ANSWER_FIRST_EVENTS, set()).add(event_type)


def answers_first(app: App, request: BoltRequest) -> bool:
    """True when `request` may be answered before Bolt dispatches it (see `answer_first`)."""
    events = app.__dict__.get(ANSWER_FIRST_EVENTS)
    body = request.body
    if not events or not is_event_delivery(body):
        return False
    event = body.get("event")
    if not isinstance(event, dict) or event.get("type") not in events:
        return False
    if request.headers.get("x-slack-retry-num"):
        return False
    authorize = app._authorize
    if authorize is None:
        return app._token is not None  # one workspace, its token from settings
    # An unknown workspace, or one whose tokens the database cannot give now, is dispatched here:
    # its answer depends on what authorize finds (a 503 lets Slack redeliver during an outage).
    resolves = getattr(authorize, "resolves", None)
    return resolves is not None and resolves(request.context)


# --------------------------------------------------------------------------- listener matching


class BodyMatcher(BuiltinListenerMatcher):
    """Bolt's built-in matcher (`app.event("app_mention")`, `app.action(...)`, …) called with the
    body directly: Bolt builds every injectable argument (about 30) to pass the one it takes, and
    every registered listener's matcher runs on every request until one matches."""

    def matches(self, req: BoltRequest, resp: BoltResponse) -> bool:
        return self.func(body=req.body)  # type: ignore[return-value]


def streamline_listeners(app: App) -> None:
    """Swap built-in matchers that take only `body` for `BodyMatcher`, and listeners for
    `StreamlinedListener` (same functions, same arguments, same result)."""
    for listener in app._listeners:
        if type(listener) is not CustomListener:
            continue
        # Same object, same state; only run_ack_function differs (Bolt builds the listener
        # inside app.event()/app.action(), so there is no constructor to hand a subclass to).
        listener.__class__ = StreamlinedListener
        listener._arguments = ArgumentBuilder(listener.ack_function, listener.logger)
        listener.matchers = [
            _body_matcher(m) if type(m) is BuiltinListenerMatcher and list(m.arg_names) == ["body"] else m
            for m in listener.matchers
        ]


def _body_matcher(matcher: BuiltinListenerMatcher) -> BodyMatcher:
    fast = BodyMatcher.__new__(BodyMatcher)
    fast.__dict__.update(matcher.__dict__)
    return fast


# --------------------------------------------------------------------------- uninstall / revocation


# processed_deliveries rows of revocation events: one key for all (no workspace key looks like it,
# so an uninstall's deletion hook never removes the row that says it was applied).
REVOCATIONS_KEY = "revocations"


def _revocation_sent_at(body: Any) -> Optional[int]:
    """The envelope's `event_time` (epoch seconds, inside the signed body), when it is one."""
    sent_at = body.get("event_time") if isinstance(body, dict) else None
    return sent_at if type(sent_at) is int and sent_at > 0 else None


def _revocation_claim(body: Any) -> Optional[Callable[[Any], bool]]:
    """Claims the delivery's `event_id` in the revoking transaction (False: applied before)."""
    event_id = body.get("event_id") if isinstance(body, dict) else None
    if not isinstance(event_id, str) or not event_id:
        return None
    row = {"workspace_key": REVOCATIONS_KEY, "delivery_id": hashlib.sha256(f"revocation:{event_id}".encode()).hexdigest(),
           "kind": "revocation", "received_at": utc_now()}
    return lambda conn: insert_ignore(conn, processed_deliveries, row)


def handle_revocation(store: InstallationStore, event: dict, context: BoltContext, body: Any = None) -> None:
    """Delete what an app_uninstalled / tokens_revoked event revokes, once per `event_id`, and
    never what was installed after the event was sent (`event_time`): the same signed bytes
    replayed within the signature window after a reinstall leave the new installation alone."""
    enterprise_id = context.enterprise_id
    team_id = None if context.is_enterprise_install else context.team_id
    if enterprise_id is None and team_id is None:
        logger.warning("%r event without a workspace or enterprise id: nothing to delete", event.get("type"))
        return
    sent_at, claim = _revocation_sent_at(body), _revocation_claim(body)
    if event["type"] == "app_uninstalled":
        if store.revoke(enterprise_id=enterprise_id, team_id=team_id, uninstall=True, sent_at=sent_at, claim=claim):
            logger.info("Uninstalled from enterprise_id=%r team_id=%r: tokens and data deleted", enterprise_id, team_id)
        else:
            logger.info("app_uninstalled for enterprise_id=%r team_id=%r ignored: a repeat, or older than the "
                        "installation", enterprise_id, team_id)
        return
    tokens = event.get("tokens") if isinstance(event.get("tokens"), dict) else {}
    user_ids = [u for u in (tokens.get("oauth") or []) if isinstance(u, str) and u]
    bots = [b for b in (tokens.get("bot") or []) if isinstance(b, str) and b]
    changed = store.revoke(enterprise_id=enterprise_id, team_id=team_id, user_ids=user_ids, bot=bool(bots),
                           sent_at=sent_at, claim=claim)
    logger.info(
        "Tokens revoked in enterprise_id=%r team_id=%r: %d user token(s)%s%s",
        enterprise_id,
        team_id,
        len(user_ids),
        " and the bot token" if bots else "",
        " deleted" if changed else ": nothing deleted (a repeat, already gone, or older than the installation)",
    )


class RevocationMiddleware(Middleware):
    """Handles app_uninstalled / tokens_revoked before any acknowledgement; every other request
    passes straight through (a plain `Middleware`: no per-request argument injection)."""

    def __init__(self, store: InstallationStore):
        self.store = store

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> Optional[BoltResponse]:  # noqa: A002
        event = revocation_event(req.body)
        if event is None:
            return next()
        handle_revocation(self.store, event, req.context, req.body)
        return BoltResponse(status=200, body="")


def register(app: App, store: InstallationStore) -> None:
    """Handle app_uninstalled and tokens_revoked before the acknowledgement (replaces
    `app.enable_token_revocation_listeners()`); a database failure raises → 503 → Slack retries."""
    app.use(RevocationMiddleware(store))
