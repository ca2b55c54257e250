"""A payload's response_url (Bolt and the listeners post to it) must point at Slack: https on the
default port at Slack's hosts, or exactly the configured API origin (the stand-in in tests); and
every entry of `response_urls` is checked, not only the first."""

from __future__ import annotations

import http.server
import io
import json
import logging
import threading
import time
from urllib.parse import urlencode

import pytest
from slack_bolt import BoltRequest

from bolt_app import database
from bolt_app.app import create_app
from bolt_app.payload import payload_problem, slack_hosts
from bolt_app.web import WebApp
from slack_standin import sign
from tests.support import SIGNING_SECRET

SLACK = slack_hosts("https://slack.com/api/")
STANDIN = slack_hosts("http://127.0.0.1:5000/api/")


@pytest.mark.parametrize("url", [
    "https://hooks.slack.com/actions/T1/1/abc", "https://hooks.slack.com:443/commands/T1/1/abc",
    "https://slack.com/x", "https://HOOKS.SLACK.COM/x", "https://a.b.slack.com/x",
])
def test_slacks_hosts_over_https_on_the_default_port(url: str) -> None:
    assert SLACK.allows(url)


@pytest.mark.parametrize("url", [
    "http://hooks.slack.com/actions/T1/1/abc",   # plain http
    "https://hooks.slack.com:8443/actions/x",     # another port
    "https://hooks.slack.com:80/x", "https://hooks.slack.com:0/x", "https://hooks.slack.com:99999/x",
    "https://hooks.slack.com:x/x", "https://evil.example/x", "https://slack.com.evil.example/x",
    "https://evilslack.com/x", "https://hooks.slack.com@evil.example/x", "https://u:p@hooks.slack.com/x",
    "ftp://hooks.slack.com/x", "//hooks.slack.com/x", "/relative", "", "https://", "https://[::1/x",
    None, 42, ["https://hooks.slack.com/x"],
])
def test_anything_else_is_refused(url) -> None:  # type: ignore[no-untyped-def]
    assert not SLACK.allows(url)


def test_a_stand_in_allows_its_exact_origin_only() -> None:
    assert STANDIN.allows("http://127.0.0.1:5000/response_url/T1/1")
    for url in ("http://127.0.0.1:5001/response_url/T1/1", "http://127.0.0.1/response_url/T1/1",
                "https://127.0.0.1:5000/response_url/T1/1", "http://localhost:5000/x", "http://x.127.0.0.1:5000/x",
                "https://hooks.slack.com/x"):
        assert not STANDIN.allows(url), url
    # https API URL on another port: that origin exactly, and Slack's subdomains on 443 only.
    custom = slack_hosts("https://api.slack.test:8443/api/")
    assert custom.allows("https://api.slack.test:8443/x") and custom.allows("https://hooks.slack.test/x")
    assert not custom.allows("https://hooks.slack.test:8443/x") and not custom.allows("http://api.slack.test:8443/x")


def interaction(**extra) -> BoltRequest:  # type: ignore[no-untyped-def]
    body = {"type": "view_submission", "user": {"id": "U1"}, "team": {"id": "T1"},
            "view": {"callback_id": "create_poll", "id": "V1"}, **extra}
    # With a logger in the context: Bolt 1.30 logs about a second entry through `context.logger`
    # before anything set it (a KeyError that happens to refuse such payloads today); a Bolt
    # without that slip must not let the second entry through unchecked.
    return BoltRequest(body=urlencode({"payload": json.dumps(body)}),
                       headers={"content-type": "application/x-www-form-urlencoded"},
                       context={"logger": logging.getLogger("tests")})


GOOD = "https://hooks.slack.com/app/T1/1/good"


def entry(url: object, channel: str = "C1") -> dict:
    return {"block_id": "b", "action_id": "a", "channel_id": channel, "response_url": url}


def test_every_entry_of_response_urls_is_checked() -> None:
    assert payload_problem(interaction(response_urls=[entry(GOOD), entry(GOOD, "C2")]), SLACK) is None
    assert payload_problem(interaction(response_urls=[]), SLACK) is None
    for urls in ([entry(GOOD), entry("https://evil.example/x", "C2")],
                 [entry("https://evil.example/x"), entry(GOOD, "C2")],
                 [entry(GOOD), entry("http://hooks.slack.com/x", "C2")],
                 [entry(GOOD), entry("https://hooks.slack.com:8443/x", "C2")]):
        assert payload_problem(interaction(response_urls=urls), SLACK) == "response_url is not a Slack URL", urls
    for malformed in ([entry(GOOD), {"channel_id": "C2"}], [entry(GOOD), "https://hooks.slack.com/x"],
                      [entry(GOOD), None]):
        assert payload_problem(interaction(response_urls=malformed), SLACK) is not None, malformed


def test_the_top_level_response_url_is_checked() -> None:
    command = BoltRequest(body=urlencode({"command": "/poll", "team_id": "T1", "user_id": "U1",
                                          "response_url": "https://hooks.slack.com:444/commands/x"}),
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert payload_problem(command, SLACK) == "response_url is not a Slack URL"
    assert payload_problem(interaction(response_url=GOOD), SLACK) is None
    assert payload_problem(interaction(response_url="https://evil.example/x"), SLACK) is not None
    # Without origins given: Slack's own.
    assert payload_problem(interaction(response_url="http://hooks.slack.com/x")) is not None
    assert payload_problem(interaction(response_url=GOOD)) is None


def test_the_events_endpoint_refuses_another_port_or_scheme_of_the_configured_origin(settings) -> None:  # type: ignore[no-untyped-def]
    engine = database.create_engine(settings.database_url, pool_size=2)
    database.upgrade(engine)
    web = WebApp(create_app(settings, engine=engine))
    origin = settings.api_url.rsplit("/api/", 1)[0]

    def post(urls: list) -> int:  # type: ignore[type-arg]
        payload = {"type": "view_submission", "user": {"id": "U1"}, "team": {"id": "T404"},
                   "view": {"type": "modal", "callback_id": "nothing_registered", "id": "V1"}, "response_urls": urls}
        body = urlencode({"payload": json.dumps(payload)}).encode()
        ts = str(int(time.time()))
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/slack/events", "QUERY_STRING": "",
                   "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": str(len(body)),
                   "wsgi.input": io.BytesIO(body), "HTTP_X_SLACK_REQUEST_TIMESTAMP": ts,
                   "HTTP_X_SLACK_SIGNATURE": sign(SIGNING_SECRET, ts, body)}
        statuses: list[str] = []
        web(environ, lambda status, headers, exc_info=None: statuses.append(status))
        return int(statuses[0].split()[0])

    # Another server on the stand-in's host: for an unknown workspace Bolt posts "please
    # reinstall" to the response_url, so a URL that got past the check would be called.
    catcher = Catcher()
    try:
        for bad in (f"http://127.0.0.1:{catcher.port}/steal", f"https://127.0.0.1:{catcher.port}/steal",
                    f"{origin}/response_url/T404/1".replace("http://", "https://")):
            assert post([entry(bad)]) == 400, bad
        assert catcher.requests == []
        good = f"{origin}/response_url/T404/1"
        assert post([entry(good)]) == 200  # the configured origin itself gets past the check
    finally:
        catcher.close()
        engine.dispose()


class Catcher:
    """An HTTP server that records what reaches it."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                outer.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
