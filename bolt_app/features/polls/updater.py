"""Coalesced, rate-limit-aware message updates: at most one `chat.update` in flight per poll.

Slack allows about 50 `chat.update` a minute per workspace (Tier 3) and answers 429 with
Retry-After beyond that; a popular poll gets more clicks than that. Votes are never held
back by this: each click is committed to the database first, then asks for the message to be
refreshed. Refreshes are coalesced:

- In this process, the first request for a poll becomes the sender: it renders the poll from
  the database and sends; requests arriving meanwhile only mark the poll dirty and return. When
  a send completes and the poll was marked dirty, the sender renders again (from the database,
  so with every vote committed so far) and sends again. The last update therefore always
  renders the state after the last vote.
- 429s: slack_sdk's RateLimitErrorRetryHandler on the client sleeps Retry-After and resends
  (up to 3 times). If Slack still says 429, the sender sleeps Retry-After itself and renders
  anew: the final render is never dropped, it only waits.
- Across processes (several gunicorn workers, several hosts) each process coalesces on its
  own, so two may send at once and Slack may apply an older render after a newer one. Every
  render carries the poll's `revision` (bumped in the same transaction as each vote) read
  before its votes; after a send completes, the sender re-reads the revision and sends again
  if it moved. Whichever send Slack applies last, its sender checks the revision only after
  that send was applied, so if it was stale, that sender sees a newer revision and sends
  again: the message ends at the state after the last vote. (Slack answers `chat.update`
  after applying it, which is what makes "checked after applied" hold.)
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Optional

from slack_sdk.errors import SlackApiError

from bolt_app.tokens.installed import WorkspaceNotInstalled

logger = logging.getLogger(__name__)

# Errors after which no further update of this message can succeed.
PERMANENT_ERRORS = frozenset(
    {
        "message_not_found",
        "cant_update_message",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "not_authed",
        "missing_scope",
    }
)


@dataclass(frozen=True)
class Snapshot:
    """One render: where the message is, what it should say, and the revision it shows."""

    revision: int
    channel_id: str
    message_ts: str
    message: dict[str, Any]  # chat.update arguments: text, blocks


Render = Callable[[], Optional[Snapshot]]
Revision = Callable[[], Optional[int]]


@dataclass
class _Pending:
    client: Any
    render: Render
    revision: Revision
    dirty: bool = False


class MessageUpdater:
    def __init__(
        self,
        *,
        executor: Optional[Executor] = None,
        max_failures: int = 5,
        give_up_after_seconds: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        # With an executor, senders run there and `request` never blocks the listener thread (so
        # votes are not queued behind message updates); without one, the requester sends itself.
        self.executor = executor
        self.max_failures = max_failures
        self.give_up_after_seconds = give_up_after_seconds
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[Hashable, _Pending] = {}

    def request(self, key: Hashable, client: Any, render: Render, revision: Revision) -> bool:
        """Ask for the message of `key` to show the current state (call after committing).

        Returns False at once when a send for `key` is already under way in this process: that
        sender will render again. Otherwise (True) a sender starts: on the executor, or in this
        call, which then returns when the message shows the latest state (or it gave up, logged).
        """
        with self._lock:
            pending = self._pending.get(key)
            if pending is not None:
                # The newest request's client carries the freshest token.
                pending.client, pending.render, pending.revision, pending.dirty = client, render, revision, True
                return False
            pending = self._pending[key] = _Pending(client, render, revision)
        if self.executor is not None:
            self.executor.submit(self._sender, key, pending)
        else:
            self._sender(key, pending)
        return True

    def _sender(self, key: Hashable, pending: _Pending) -> None:
        try:
            self._send_until_current(key, pending)
        except Exception:  # a render failing (database down): logged, the next vote starts anew
            logger.exception("Updating the message of %s failed", key)
        finally:
            with self._lock:
                if self._pending.get(key) is pending:
                    del self._pending[key]

    def in_flight(self) -> int:
        with self._lock:
            return len(self._pending)

    def _send_until_current(self, key: Hashable, pending: _Pending) -> None:
        started = self._clock()
        failures = 0
        while True:
            with self._lock:
                pending.dirty = False
                client, render, revision = pending.client, pending.render, pending.revision
            snapshot = render()
            if snapshot is None:
                return  # the poll is gone or has no message
            outcome, wait = self._send(client, snapshot, key)
            if outcome == "stop":
                return
            if outcome != "sent":
                # Rate limits only wait (the final render must go out); other failures are counted.
                failures += outcome == "failed"
                if failures > self.max_failures or self._clock() - started > self.give_up_after_seconds:
                    logger.error("Giving up updating the message of %s (%d failed attempts)", key, failures)
                    return
                self._sleep(wait)
                continue
            failures = 0
            latest = revision()
            with self._lock:
                if not pending.dirty and (latest is None or latest == snapshot.revision):
                    # Nothing newer anywhere: done. Removing the entry under the lock means a
                    # request that comes after this sees no sender and becomes one.
                    del self._pending[key]
                    return

    def _send(self, client: Any, snapshot: Snapshot, key: Hashable) -> tuple[str, float]:
        """("sent", 0), ("ratelimited" | "failed", seconds to wait before rendering again) or ("stop", 0)."""
        try:
            client.chat_update(channel=snapshot.channel_id, ts=snapshot.message_ts, **snapshot.message)
            return "sent", 0.0
        except SlackApiError as error:
            code = error.response.get("error") if error.response is not None else None
            status = getattr(error.response, "status_code", None)
            if status == 429 or code == "ratelimited":
                # The client's RateLimitErrorRetryHandler already waited and resent; keep honouring
                # Retry-After, rendering anew each time so the newest state goes out.
                return "ratelimited", _retry_after(error) or 1.0
            if code in PERMANENT_ERRORS:
                logger.warning("Stopped updating the message of %s: %s", key, code)
                return "stop", 0.0
            logger.warning("chat.update for %s failed (%s); will retry", key, code or status)
            return "failed", 1.0
        except WorkspaceNotInstalled:
            logger.info("Stopped updating the message of %s: the workspace is no longer installed", key)
            return "stop", 0.0
        except Exception as error:  # connection errors after the client's own retries
            logger.warning("chat.update for %s failed (%s); will retry", key, type(error).__name__)
            return "failed", 1.0


def _retry_after(error: SlackApiError) -> Optional[float]:
    headers = getattr(error.response, "headers", None) or {}
    for name, value in headers.items():
        if name.lower() == "retry-after":
            value = value[0] if isinstance(value, (list, tuple)) else value
            try:
                return max(float(value), 0.1)
            except (TypeError, ValueError):
                return None
    return None
