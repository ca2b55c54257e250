"""Slack's request signature, checked in-process: every way a signature can be wrong, with a
*current* timestamp so that the signature itself (not the replay window) is what refuses it.

The end-to-end tests (tests/e2e, tests/security/test_hostile_input.py) send hostile headers to a
server process; these are fast, so the mutation run (docs/mutation-testing.md) can use them.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time

import pytest

from bolt_app import database
from bolt_app.app import create_app
from bolt_app.web import SIGNATURE_WINDOW_SECONDS, WebApp, verify_signature
from slack_standin import sign
from tests.support import SIGNING_SECRET

SECRET = SIGNING_SECRET.encode()
BODY = b'{"type":"event_callback","team_id":"T0001","event":{"type":"app_mention"}}'
NOW = 1_700_000_000


def reference(timestamp: int | str, body: bytes = BODY, secret: bytes = SECRET) -> str:
    """The signature computed here, independently of the code under test."""
    base = b"v0:%s:%s" % (str(timestamp).encode(), body)
    return "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()


def check(signature: str | None, timestamp: int | str | None = NOW, body: bytes = BODY, now: float = NOW) -> bool:
    return verify_signature(SECRET, body, None if timestamp is None else str(timestamp), signature, now=now)


def test_the_right_signature_passes_and_agrees_with_the_stand_in() -> None:
    assert reference(NOW) == sign(SIGNING_SECRET, NOW, BODY)
    assert check(reference(NOW)) is True


@pytest.mark.parametrize("signature", [
    "", "v0", "v0=", "v0=a", "v0=ab", "v1=", "=", " ", "v0= ",
])
def test_empty_and_short_signatures_fail_with_a_current_timestamp(signature: str) -> None:
    # A prefix of the right signature is not the signature: compared as a prefix, all of these would pass.
    assert check(signature) is False
    right = reference(NOW)
    assert check(right[: len(signature)] if signature else signature) is False


@pytest.mark.parametrize("cut", [1, 2, 10, 32, 66])
def test_any_prefix_or_extension_of_the_right_signature_fails(cut: int) -> None:
    right = reference(NOW)
    assert len(right) == 67
    assert check(right[:cut]) is False
    assert check(right + right[:cut]) is False
    assert check(right + "\x00") is False


def test_one_wrong_character_anywhere_fails() -> None:
    right = reference(NOW)
    for index in range(len(right)):
        wrong = right[:index] + ("0" if right[index] != "0" else "1") + right[index + 1:]
        assert check(wrong) is False, index
    assert check(right.upper()) is False  # hex digits in upper case are another string
    assert check("V0=" + right[3:]) is False
    assert check("v1=" + right[3:]) is False


def test_the_signature_covers_body_timestamp_secret_and_version() -> None:
    assert check(reference(NOW, body=BODY + b" ")) is False
    assert check(reference(NOW, body=BODY), body=BODY.replace(b",", b", ")) is False
    assert check(reference(NOW, secret=b"another-secret")) is False
    # Signed for one second, sent with another (both inside the window).
    assert check(reference(NOW - 1), timestamp=NOW) is False
    # The same digits written differently are another signed string.
    assert check(reference(NOW), timestamp=f"0{NOW}") is False
    assert check(reference(f"0{NOW}"), timestamp=f"0{NOW}") is True
    # Slack's scheme is "v0:<timestamp>:<body>": any other base string is another signature.
    for base in (b"v0:%d%s" % (NOW, BODY), b"%d:%s" % (NOW, BODY), b"v0:%d:%s:" % (NOW, BODY),
                 b"v1:%d:%s" % (NOW, BODY), b"V0:%d:%s" % (NOW, BODY), b"v0:%d::%s" % (NOW, BODY)):
        assert check("v0=" + hmac.new(SECRET, base, hashlib.sha256).hexdigest()) is False, base
    # Not a hash of the base string, nor another digest of it.
    base = b"v0:%d:%s" % (NOW, BODY)
    assert check("v0=" + hashlib.sha256(base).hexdigest()) is False
    assert check("v0=" + hmac.new(SECRET, base, hashlib.sha1).hexdigest()) is False
    assert check("v0=" + hmac.new(SECRET, base, hashlib.sha256).digest().hex().upper()) is False


def test_an_empty_body_is_signed_like_any_other() -> None:
    assert check(reference(NOW, body=b""), body=b"") is True
    assert check(reference(NOW, body=b"x"), body=b"") is False


@pytest.mark.parametrize("timestamp", [None, "", "abc", "1.5", f"{NOW}.0", "0x10", " "])
def test_missing_or_malformed_timestamps_fail(timestamp) -> None:  # type: ignore[no-untyped-def]
    signature = reference(timestamp if timestamp is not None else "")
    assert check(signature, timestamp=timestamp) is False


def test_missing_signature_fails() -> None:
    assert check(None) is False
    assert verify_signature(SECRET, BODY, str(NOW), None, now=NOW) is False


def test_the_window_is_five_minutes_either_way_inclusive() -> None:
    assert SIGNATURE_WINDOW_SECONDS == 300
    for offset in (0, 1, -1, 299, -299, 300, -300):
        sent = NOW + offset
        assert check(reference(sent), timestamp=sent) is True, offset
    for offset in (301, -301, 302, -302, 3600, -3600, 10**9, -(10**9)):
        sent = NOW + offset
        assert check(reference(sent), timestamp=sent) is False, offset
    # Fractions of a second of the clock count too.
    assert check(reference(NOW - 300), timestamp=NOW - 300, now=NOW + 0.5) is False
    assert check(reference(NOW - 300), timestamp=NOW - 300, now=NOW - 0.5) is True


def test_without_an_explicit_clock_the_window_is_around_now() -> None:
    current = int(time.time())
    assert verify_signature(SECRET, BODY, str(current), reference(current)) is True
    stale = current - 400
    assert verify_signature(SECRET, BODY, str(stale), reference(stale)) is False
    # With an explicit clock, that clock counts, not the real one.
    assert verify_signature(SECRET, BODY, str(stale), reference(stale), now=stale + 10) is True
    assert verify_signature(SECRET, BODY, str(current), reference(current), now=current + 400) is False
    # now=0 is a clock reading like any other (not "no clock").
    assert verify_signature(SECRET, BODY, "0", reference(0), now=0) is True
    assert verify_signature(SECRET, BODY, str(current), reference(current), now=0) is False


@pytest.mark.parametrize("signature", ["v0=é", "v0=\udcff", "v0=\x00", "v0=" + "ÿ" * 64, "\u2028"])
def test_any_header_text_is_refused_without_an_error(signature: str) -> None:
    # WSGI headers are latin-1 text; a non-ASCII value must be refused, never raise.
    assert check(signature) is False


# --------------------------------------------------------------------------- through the WSGI app


@pytest.fixture
def web(settings) -> WebApp:  # type: ignore[no-untyped-def]
    engine = database.create_engine(settings.database_url, pool_size=2)
    database.upgrade(engine)
    app = create_app(settings, engine=engine)
    yield WebApp(app)
    engine.dispose()


def post(web: WebApp, body: bytes, headers: dict[str, str]) -> int:
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/slack/events", "QUERY_STRING": "",
               "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
    environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
    statuses = []
    web(environ, lambda status, headers, exc_info=None: statuses.append(status))
    return int(statuses[0].split()[0])


def test_the_events_endpoint_refuses_short_signatures_with_a_current_timestamp(web: WebApp) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "c"}).encode()
    current = str(int(time.time()))
    for signature in ("v0=", "v0=ab", "v0", "", sign(SIGNING_SECRET, current, body)[:-1]):
        assert post(web, body, {"X-Slack-Request-Timestamp": current, "X-Slack-Signature": signature}) == 401, signature
    assert post(web, body, {"X-Slack-Request-Timestamp": current}) == 401
    # The same request correctly signed is answered: the 401s above came from the signature alone.
    assert post(web, body, {"X-Slack-Request-Timestamp": current,
                            "X-Slack-Signature": sign(SIGNING_SECRET, current, body)}) == 200


def test_a_client_cannot_ask_bolt_to_run_only_a_lazy_function() -> None:
    # Bolt runs only the named lazy function of a request carrying these headers (the task queue's
    # jobs do); the signature covers the body only, so from a client they are dropped.
    from slack_bolt import BoltRequest

    from bolt_app.web import _headers

    environ = {"HTTP_X_SLACK_BOLT_LAZY_ONLY": "1", "HTTP_X_SLACK_BOLT_LAZY_FUNCTION_NAME": "reply_to_mention",
               "HTTP_X_SLACK_SIGNATURE": "v0=x", "CONTENT_TYPE": "application/json"}
    headers = _headers(environ)
    assert headers == {"x-slack-signature": "v0=x", "content-type": "application/json"}
    request = BoltRequest(body="{}", headers=headers)
    assert not request.lazy_only and request.lazy_function_name is None
