"""Hostile input against the running server (property-based where it fits).

Whatever arrives — random or malformed bodies, wrong content types, missing / duplicated /
garbage signature headers, stale or future timestamps, replays, oversized bodies, unknown payload
types, interactivity payloads with fields missing or of the wrong type, OAuth callbacks with any
mix of missing / invalid / reused state and code and `error` values — the server never answers
5xx, never stores a row, and keeps answering /healthz (watched by a thread throughout).
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import threading
import time
from typing import Any, Iterator
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bolt_app import database
from slack_standin import SlackStandIn, sign, signed_headers
from bolt_app.web import MAX_BODY_BYTES
from tests.security.support import row_counts
from tests.support import (
    CLIENT_ID,
    CLIENT_SECRET,
    SIGNING_SECRET,
    AppServer,
    Browser,
    Response,
    authorize_url_from_install_page,
    install,
    query_of,
)

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "40"))
hostile = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),  # reproducible in CI, exploring locally
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


class Target:
    def __init__(self, server: AppServer, standin: SlackStandIn, team_id: str, bot_user_id: str, channel: str,
                 user_id: str, database_url: str):
        self.server, self.standin = server, standin
        self.team_id, self.bot_user_id, self.channel, self.user_id = team_id, bot_user_id, channel, user_id
        self.database_url = database_url
        self.statuses: list[tuple[int, str]] = []

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        status = Browser().request("POST", self.server.events_url, body=body, headers=headers).status
        self.statuses.append((status, body[:80].decode("utf-8", "replace")))
        return status

    def signed(self, body: bytes, content_type: str = "application/json", timestamp: int | None = None) -> int:
        return self.post(body, signed_headers(SIGNING_SECRET, body, timestamp=timestamp, content_type=content_type))

    def counts(self) -> dict[str, int]:
        engine = database.create_engine(self.database_url, pool_size=1)
        try:
            return row_counts(engine)
        finally:
            engine.dispose()


class HealthWatcher(threading.Thread):
    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.stop_event = url, threading.Event()
        self.ok = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop_event.wait(0.25):
            try:
                status = Browser().get(self.url).status
                if status == 200:
                    self.ok += 1
                else:
                    self.failures.append(str(status))
            except OSError as error:
                self.failures.append(type(error).__name__)


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Iterator[Target]:
    workdir = tmp_path_factory.mktemp("hostile")
    url = f"sqlite:///{workdir / 'hostile.db'}"
    with SlackStandIn(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, signing_secret=SIGNING_SECRET) as standin:
        server = AppServer(standin=standin, database_url=url, workdir=workdir, extra_env={}).start()
        watcher = HealthWatcher(f"{server.url}/healthz")
        try:
            ws = standin.create_workspace(name="Target Co")
            assert install(server.url, standin, ws.team_id).response.status == 200
            watcher.start()
            t = Target(server, standin, ws.team_id, ws.bot_user_id, ws.default_channel_id, ws.installer_user_id, url)
            before = t.counts()
            yield t
            # Never a stored row, never a 5xx, /healthz answered throughout.
            assert t.counts() == before
            assert [s for s in t.statuses if s[0] >= 500] == []
            assert watcher.failures == [] and watcher.ok > 0
        finally:
            watcher.stop_event.set()
            server.stop()


def no_5xx(status: int) -> None:
    assert 200 <= status < 500, status


# --------------------------------------------------------------------------- strategies

SLACK_TYPES = ["event_callback", "url_verification", "ssl_check", "block_actions", "view_submission", "view_closed",
               "shortcut", "message_action", "block_suggestion", "interactive_message", "dialog_submission",
               "app_rate_limited", "workflow_step_execute"]
# No event type that does legitimate work (app_mention, app_home_opened): whatever gets stored
# here would be a bug.
EVENT_TYPES = ["message", "reaction_added", "app_uninstalled_team", "team_join", "member_joined_channel",
               "tokens_revoked", "app_uninstalled", "link_shared", "function_executed"]
KEYS = ["type", "event", "team_id", "enterprise_id", "authorizations", "api_app_id", "user", "user_id", "channel",
        "team", "enterprise", "actions", "view", "challenge", "token", "event_id", "is_enterprise_install",
        "trigger_id", "response_url", "container", "message", "callback_id", "action_id", "block_id", "value",
        "tokens", "oauth", "bot", "state", "values", "private_metadata", "command", "text", "tab", "id"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False),
                    st.text(max_size=30), st.sampled_from(SLACK_TYPES + EVENT_TYPES + ["poll_vote_1", "poll_close",
                                                                                         "x:1", "T0001", "U0001"]))
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.sampled_from(KEYS), children, max_size=6)),
    max_leaves=25,
)


@st.composite
def slack_like_payloads(draw, team_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Dicts shaped like Slack payloads, often with the real workspace so authorize succeeds and the
    listeners (and their field access) are reached, with any field missing or of the wrong type."""
    payload = draw(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8))
    payload["type"] = draw(st.one_of(st.sampled_from(SLACK_TYPES), json_values))
    if draw(st.booleans()):
        payload["team_id"] = team_id
        payload["team"] = draw(st.one_of(st.just({"id": team_id}), json_values))
    if payload["type"] == "event_callback" and draw(st.booleans()):
        event = draw(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6))
        event["type"] = draw(st.sampled_from(EVENT_TYPES))
        payload["event"] = event
    if draw(st.booleans()):
        payload["authorizations"] = draw(st.one_of(
            st.just([{"team_id": team_id, "is_bot": True, "is_enterprise_install": False}]), json_values))
    if payload["type"] in ("block_actions", "block_suggestion") and draw(st.booleans()):
        payload["actions"] = draw(st.lists(st.dictionaries(
            st.sampled_from(["action_id", "block_id", "value", "action_ts", "type", "selected_option"]),
            json_values | st.sampled_from(["poll_vote_1", "poll_vote_2", "poll_close", "poll_home_create",
                                           "nope:1", "P1:1", "1"]), max_size=5), max_size=3))
    return payload


# --------------------------------------------------------------------------- events endpoint


@hostile
@given(body=st.binary(max_size=3000), content_type=st.sampled_from([
    "application/json", "application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x",
    "application/xml", "", "application/json; charset=utf-16"]))
def test_random_bytes_signed_or_not(target, body: bytes, content_type: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    assert target.post(body, headers) == 401  # unsigned: refused before anything is parsed
    no_5xx(target.signed(body, content_type or "application/octet-stream"))


@hostile
@given(data=st.data(), as_form=st.booleans())
def test_signed_slack_shaped_payloads_with_fields_missing_or_wrong(target, data, as_form: bool) -> None:
    payload = data.draw(slack_like_payloads(target.team_id))
    if as_form:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        no_5xx(target.signed(body, "application/x-www-form-urlencoded"))
    else:
        no_5xx(target.signed(json.dumps(payload).encode(), "application/json"))


@hostile
@given(fields=st.dictionaries(st.sampled_from(KEYS + ["command", "text", "channel_id", "response_url"]),
                              st.text(max_size=40), max_size=10),
       command=st.sampled_from(["/unknown", "/poll", "", "poll", "/POLL"]))
def test_signed_slash_commands_with_garbage_fields(target, fields: dict, command: str) -> None:
    fields = dict(fields, command=command)
    if command == "/poll":
        fields.setdefault("team_id", target.team_id)
        fields["text"] = fields.get("text", "").replace('"', "")  # never a well-formed poll (that would store one)
    no_5xx(target.signed(urlencode(fields).encode(), "application/x-www-form-urlencoded"))


@hostile
@given(signature=st.one_of(st.none(), st.text(max_size=80), st.just("v0="), st.just("v1=" + "0" * 64)),
       timestamp=st.one_of(st.none(), st.text(max_size=20), st.integers(-2**63, 2**63).map(str)))
def test_garbage_signature_headers(target, signature, timestamp) -> None:
    body = json.dumps({"type": "event_callback", "team_id": target.team_id, "event": {"type": "message"}}).encode()
    headers = {"Content-Type": "application/json"}
    for name, value in (("X-Slack-Signature", signature), ("X-Slack-Request-Timestamp", timestamp)):
        if value is not None:
            headers[name] = value.encode("latin-1", "replace").decode("latin-1").replace("\r", "").replace("\n", "")
    # 401, or 400 from the HTTP server itself for a header value it will not parse.
    assert target.post(body, headers) in (400, 401)


@hostile
@given(offset=st.integers(-10**8, 10**8).filter(lambda n: not 280 <= abs(n) <= 320))
def test_timestamps_outside_five_minutes_are_refused(target, offset: int) -> None:
    body = json.dumps({"type": "event_callback", "team_id": target.team_id,
                       "event": {"type": "reaction_added", "user": target.user_id}}).encode()
    status = target.signed(body, timestamp=int(time.time()) + offset)
    no_5xx(status)
    assert (status == 401) == (abs(offset) > 300), (offset, status)


def test_replays_duplicate_headers_oversized_and_unknown_types(target) -> None:
    event = {"type": "event_callback", "team_id": target.team_id, "event_id": "EvReplay", "api_app_id": "A0APP",
             "event": {"type": "reaction_added", "user": target.user_id},
             "authorizations": [{"team_id": target.team_id, "is_bot": True, "is_enterprise_install": False}]}
    body = json.dumps(event).encode()
    # A valid request replayed after five minutes (its signature is still correct for its timestamp).
    for age in (301, 600, 3600, 86400):
        assert target.signed(body, timestamp=int(time.time()) - age) == 401
    assert target.signed(body) not in (401, 500)  # the same body, fresh: accepted

    # Duplicated signature headers (joined by the server): refused.
    ts = str(int(time.time()))
    good = sign(SIGNING_SECRET, ts, body)
    for first, second in ((good, good), (good, "v0=" + "0" * 64), ("v0=" + "0" * 64, good)):
        conn = http.client.HTTPConnection("127.0.0.1", target.server.port, timeout=10)
        conn.putrequest("POST", "/slack/events")
        for name, value in (("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                            ("X-Slack-Request-Timestamp", ts), ("X-Slack-Signature", first),
                            ("X-Slack-Signature", second)):
            conn.putheader(name, value)
        conn.endheaders(body)
        status = conn.getresponse().status
        conn.close()
        assert status == 401, (first[:8], second[:8], status)

    # Oversized, signed or not.
    big = b"{" + b" " * MAX_BODY_BYTES + b"}"
    assert target.signed(big) == 413
    assert target.post(big, {"Content-Type": "application/json"}) == 413

    # Unknown payload types and shapes, correctly signed.
    for payload in ({"type": "no_such_type"}, {"type": None}, {"type": ["event_callback"]}, {"type": {"a": 1}},
                    {"type": "event_callback"}, {"type": "event_callback", "event": "app_mention"},
                    {"type": "event_callback", "event": {"type": "no_such_event"}, "team_id": target.team_id},
                    {"type": "event_callback", "event": {}, "authorizations": "x"},
                    {"type": "event_callback", "event": {"type": "message"}, "authorizations": [None]},
                    {"type": "event_callback", "event": {"type": "message"}, "team_id": {"id": "T1"}},
                    {"type": "event_callback", "event": {"type": "message", "user": {"id": 1}},
                     "team_id": target.team_id},
                    {"type": "event_callback", "event": {"type": "message"}, "team_id": "T\x00\x01"},
                    {"type": "event_callback", "event": {"type": "message"}, "team_id": "T" * 5000},
                    {"type": "url_verification"}, {"type": "url_verification", "challenge": {"x": 1}},
                    {"type": "ssl_check", "ssl_check": "1"}):
        no_5xx(target.signed(json.dumps(payload).encode()))
    for raw in (b"payload=", b"payload=null", b"payload=%5B%5D", b"payload=%7B%7D", b"payload=1",
                b"payload=" + b"%5B" * 5000, b"payload=%7B%22type%22%3A%22block_actions%22%7D&payload=x",
                b"command=%2Fpoll&text=%22a%22", b"%ff%fe=%00"):
        no_5xx(target.signed(raw, "application/x-www-form-urlencoded"))


def test_interactivity_payloads_with_fields_missing(target) -> None:
    team = {"id": target.team_id}
    user = {"id": target.user_id}
    container = {"type": "message", "channel_id": target.channel, "message_ts": "1.1"}
    vote = {"action_id": "poll_vote_1", "block_id": "option_1", "value": "P404:1", "action_ts": "1.2"}
    complete = {"type": "block_actions", "team": team, "user": user, "container": container,
                "channel": {"id": target.channel}, "actions": [vote], "trigger_id": "1.2.3", "api_app_id": "A0APP"}
    cases: list[dict] = []
    for missing in complete:  # every field missing in turn
        cases.append({k: v for k, v in complete.items() if k != missing})
    for key in ("team", "user", "container", "channel", "actions"):  # every field of the wrong type
        for wrong in (None, "x", 1, [], {}):
            cases.append({**complete, key: wrong})
    for action in ({}, {"action_id": "poll_vote_1"}, {"action_id": "poll_vote_1", "value": None},
                   {"action_id": "poll_vote_1", "value": "no-colon"}, {"action_id": "poll_vote_x", "value": "P:1"},
                   {"action_id": "poll_close"}, {"action_id": "poll_close", "value": {"x": 1}},
                   {"action_id": "poll_home_create"}, {"action_id": ["poll_close"]}):
        cases.append({**complete, "actions": [action]})
    for kind in ("view_submission", "view_closed", "shortcut", "message_action", "block_suggestion"):
        base = {"type": kind, "team": team, "user": user, "api_app_id": "A0APP", "trigger_id": "1.2.3"}
        cases += [base, {**base, "view": None}, {**base, "view": {}}, {**base, "view": {"callback_id": "poll_create"}},
                  {**base, "view": {"callback_id": "poll_create", "state": {"values": None}}},
                  {**base, "view": {"callback_id": "poll_create", "state": {"values": {"x": "y"}},
                                    "private_metadata": "{not json"}},
                  {**base, "callback_id": "poll_create"}, {**base, "callback_id": None}]
    for payload in cases:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        no_5xx(target.signed(body, "application/x-www-form-urlencoded"))


# --------------------------------------------------------------------------- OAuth


def test_oauth_callbacks_with_every_mix_of_state_code_and_error(target) -> None:
    server, standin = target.server, target.standin
    ws = standin.create_workspace(name="OAuth Hostile")

    def fresh() -> tuple[Browser, str, str]:
        browser = Browser()
        authorize_url = authorize_url_from_install_page(browser.get(f"{server.url}/slack/install").text)
        return browser, query_of(authorize_url)["state"], authorize_url

    # A state and a code that were used once already (by a good install, not counted below).
    used_browser, used_state, url = fresh()
    used_code = query_of(standin.approve(url, team_id=ws.team_id))["code"]
    assert used_browser.get(f"{server.url}/slack/oauth_redirect?code={used_code}&state={used_state}").status == 200
    baseline = target.counts()

    states = ["missing", "empty", "garbage", "huge", "reused", "other_browser", "valid"]
    codes = ["missing", "empty", "garbage", "reused", "valid"]
    errors = [None, "access_denied", "invalid_scope", "<script>alert(1)</script>", "", "x" * 3000]
    seen: dict[int, int] = {}
    for state_kind, code_kind, error in itertools.product(states, codes, errors):
        if state_kind == "valid" and code_kind == "valid" and error is None:
            continue  # the one good install
        browser, state, url = fresh()
        query: dict[str, str] = {}
        if state_kind != "missing":
            query["state"] = {"empty": "", "garbage": "garbage-state", "huge": "s" * 5000, "reused": used_state,
                              "other_browser": state, "valid": state}[state_kind]
        if state_kind == "other_browser":
            browser = Browser()
        if state_kind == "reused":
            browser.cookies = dict(used_browser.cookies)
        if code_kind != "missing":
            query["code"] = {"empty": "", "garbage": "garbage-code", "reused": used_code,
                             "valid": query_of(standin.approve(url, team_id=ws.team_id))["code"]}[code_kind]
        if error is not None:
            query["error"] = error
        response: Response = browser.get(f"{server.url}/slack/oauth_redirect?{urlencode(query)}")
        seen[response.status] = seen.get(response.status, 0) + 1
        assert 200 <= response.status < 500, (state_kind, code_kind, error, response.status)
        assert "<script>" not in response.text
    assert target.counts() == baseline
    assert len(seen) > 1 and sum(seen.values()) == len(states) * len(codes) * len(errors) - 1
    # Clean up the good install so the suite's "no stored row" check compares like with like.
    engine = database.create_engine(target.database_url, pool_size=1)
    from bolt_app.storage.installation_store import InstallationStore

    InstallationStore(client_id=CLIENT_ID, engine=engine).delete_all(enterprise_id=None, team_id=ws.team_id)
    engine.dispose()


@hostile
@given(query=st.dictionaries(st.sampled_from(["state", "code", "error", "team", "x", "redirect_uri", "scope"]),
                             st.text(max_size=200), max_size=5),
       path=st.sampled_from(["/slack/oauth_redirect", "/slack/install"]),
       cookie=st.one_of(st.none(), st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126,
                                                                  exclude_characters=";,"), max_size=100)))
def test_random_oauth_queries(target, query: dict, path: str, cookie) -> None:
    headers = {"Cookie": f"slack-app-oauth-state={cookie}"} if cookie is not None else {}
    status = Browser().get(f"{target.server.url}{path}?{urlencode(query)}", headers=headers).status
    target.statuses.append((status, path))
    no_5xx(status)
