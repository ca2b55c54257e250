"""The message-update coalescer: one send in flight per poll, the last render is the latest
state, 429s wait and re-render, and two processes converge on the latest state."""

from __future__ import annotations

import threading

from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bolt_app.features.polls.updater import MessageUpdater, Snapshot
from tests.support import wait_for


def api_error(status: int, error: str, headers: dict | None = None) -> SlackApiError:
    response = SlackResponse(client=None, http_verb="POST", api_url="chat.update", req_args={},
                             data={"ok": False, "error": error}, headers=headers or {}, status_code=status)
    return SlackApiError(error, response)


class Store:
    """The database: a revision counter and the state it renders."""

    def __init__(self) -> None:
        self.revision = 0
        self.lock = threading.Lock()

    def vote(self) -> None:
        with self.lock:
            self.revision += 1

    def render(self) -> Snapshot:
        with self.lock:
            return Snapshot(self.revision, "C1", "1.1", {"text": f"votes={self.revision}"})

    def current(self) -> int:
        return self.revision


class Slack:
    """Records chat.update calls; `gate` blocks sends until released, `failures` raise first."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.failures: list[SlackApiError] = []

    def chat_update(self, *, channel: str, ts: str, text: str, **_: object) -> dict:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(5)
        if self.failures:
            raise self.failures.pop(0)
        self.applied.append(text)
        return {"ok": True}


def test_requests_while_a_send_is_in_flight_coalesce_into_one_more_send() -> None:
    store, slack, updater = Store(), Slack(), MessageUpdater()
    slack.gate = threading.Event()
    store.vote()
    sender = threading.Thread(target=updater.request, args=("p", slack, store.render, store.current))
    sender.start()
    assert slack.entered.wait(5)
    for _ in range(20):  # twenty more votes while the first send is in flight
        store.vote()
        assert updater.request("p", slack, store.render, store.current) is False  # returns at once
    slack.gate.set()
    sender.join(5)
    assert slack.applied == ["votes=1", "votes=21"]  # two sends in all; the last shows every vote
    assert updater.in_flight() == 0
    store.vote()
    assert updater.request("p", slack, store.render, store.current) is True  # a new sender afterwards
    assert slack.applied[-1] == "votes=22"


def test_rate_limits_wait_retry_after_and_send_the_newest_render() -> None:
    store, slack = Store(), Slack()
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # a vote lands while the sender waits out the rate limit
        waits.append(seconds)
        store.vote()

    updater = MessageUpdater(sleep=sleep, max_failures=1)
    slack.failures = [api_error(429, "ratelimited", {"Retry-After": "3"}) for _ in range(6)]  # more than max_failures
    store.vote()
    updater.request("p", slack, store.render, store.current)
    assert waits == [3.0] * 6  # rate limits never count as failures: the final render must go out
    assert slack.applied == ["votes=7"]


def test_permanent_errors_and_vanished_polls_stop_the_sender() -> None:
    store, slack, updater = Store(), Slack(), MessageUpdater(sleep=lambda s: None)
    slack.failures = [api_error(200, "message_not_found")]
    updater.request("p", slack, store.render, store.current)
    assert slack.applied == [] and updater.in_flight() == 0
    updater.request("p", slack, lambda: None, store.current)
    assert slack.applied == []
    slack.failures = [api_error(500, "internal_error"), api_error(200, "fatal_error")]
    updater.request("p", slack, store.render, store.current)  # transient failures are retried
    assert slack.applied == ["votes=0"]


def test_two_processes_converge_even_when_slack_applies_a_stale_render_last() -> None:
    """Process 1 renders revision 1; process 2 renders revision 2 and its send is applied first;
    process 1's stale send is applied after it. Process 1 then sees the revision moved and sends
    again, so the message ends at the latest state."""
    store, slack = Store(), Slack()
    first, second = MessageUpdater(), MessageUpdater()  # one per process: no shared memory
    store.vote()
    slack.gate = threading.Event()
    p1 = threading.Thread(target=first.request, args=("p", slack, store.render, store.current))
    p1.start()
    assert slack.entered.wait(5)  # process 1 rendered votes=1 and is sending
    store.vote()

    class Direct(Slack):  # process 2's send goes through at once
        def chat_update(self, **kwargs):  # type: ignore[override]
            slack.applied.append(kwargs["text"])
            return {"ok": True}

    second.request("p", Direct(), store.render, store.current)
    assert slack.applied == ["votes=2"]
    slack.gate.set()  # the stale render is applied last...
    p1.join(5)
    assert slack.applied == ["votes=2", "votes=1", "votes=2"]  # ...and process 1 repairs it
    assert wait_for(lambda: first.in_flight() == 0 and second.in_flight() == 0)


def test_with_an_executor_requests_never_block_the_caller() -> None:
    from concurrent.futures import ThreadPoolExecutor

    store, slack = Store(), Slack()
    slack.gate = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        updater = MessageUpdater(executor=pool)
        store.vote()
        assert updater.request("p", slack, store.render, store.current) is True  # returns while sending
        assert slack.entered.wait(5) and slack.applied == []
        store.vote()
        assert updater.request("p", slack, store.render, store.current) is False
        slack.gate.set()
        assert wait_for(lambda: updater.in_flight() == 0)
        # A render that raises (database down) is logged and frees the poll for the next request.
        assert updater.request("q", slack, lambda: 1 / 0, store.current) is True
        assert wait_for(lambda: updater.in_flight() == 0)
    assert slack.applied == ["votes=1", "votes=2"]
