"""HTTP hardening on the real server: 413 before the body is read, security headers on every
install/callback page, the state cookie's flags."""

from __future__ import annotations

import socket
import time
from http.cookies import SimpleCookie

from slack_standin import signed_headers
from bolt_app.web import MAX_BODY_BYTES
from tests.support import SIGNING_SECRET, Browser, Response, authorize_url_from_install_page, query_of, signed_post

PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def raw_exchange(port: int, head: bytes, body_parts: list[bytes], timeout: float = 10.0) -> bytes:
    """Send a request head and some body bytes on a raw socket; return what the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        for part in body_parts:
            try:
                sock.sendall(part)
            except OSError:  # the server answered and closed: that is the point
                break
        chunks = []
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
        except socket.timeout:
            pass
    return b"".join(chunks)


def state_cookie(response: Response):  # type: ignore[no-untyped-def]
    """The state cookie the response sets (its name may carry a per-install suffix)."""
    for value in response.headers.get_all("Set-Cookie") or []:
        cookie = SimpleCookie()
        cookie.load(value)
        for name, morsel in cookie.items():
            if name.removeprefix("__Host-").startswith("slack-app-oauth-state"):
                return morsel
    raise AssertionError(f"no state cookie set: {response.headers.get_all('Set-Cookie')}")


def assert_page_headers(response: Response) -> None:
    for name, value in PAGE_HEADERS.items():
        assert response.header(name) == value, (name, response.header(name))
    csp = response.header("Content-Security-Policy")
    for directive in ("default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"):
        assert directive in csp, csp
    assert "script-src" not in csp  # no scripts at all (default-src 'none')


def test_oversized_bodies_are_refused_before_they_are_read(standin, app_server_factory, sqlite_url) -> None:
    server = app_server_factory(sqlite_url)
    head = (
        f"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {50 * MAX_BODY_BYTES}\r\nX-Slack-Request-Timestamp: {int(time.time())}\r\n"
        f"X-Slack-Signature: v0=00\r\n\r\n"
    ).encode()
    started = time.monotonic()
    # 50 MiB announced, a few bytes sent: an answer now proves the body was never waited for.
    answer = raw_exchange(server.port, head, [b"{" * 10])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert time.monotonic() - started < 5

    # Chunked (no Content-Length): read up to the limit and no further, then 413.
    chunk = b"x" * 65536
    chunked_head = b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (MAX_BODY_BYTES // len(chunk) + 2) + [b"0\r\n\r\n"]
    assert raw_exchange(server.port, chunked_head, parts).startswith(b"HTTP/1.1 413")

    # At the limit: read and judged normally (a signed body that is not a Slack payload → 4xx, not 413).
    at_limit = b"{" + b" " * (MAX_BODY_BYTES - 2) + b"}"
    assert signed_post(server.events_url, at_limit, "application/json").status == 400
    assert signed_post(server.events_url, at_limit + b" ", "application/json").status == 413
    # Unsigned and oversized: the size is checked first, nothing is verified or parsed.
    assert Browser().request("POST", server.events_url, body=b"x" * (MAX_BODY_BYTES + 1)).status == 413
    assert Browser().get(f"{server.url}/healthz").status == 200


def test_install_and_callback_pages_carry_security_headers_and_cookie_flags(
    standin, app_server_factory, sqlite_url
) -> None:
    server = app_server_factory(sqlite_url)
    ws = standin.create_workspace(name="Headers Co")

    browser = Browser()
    page = browser.get(f"{server.url}/slack/install")
    assert page.status == 200
    assert_page_headers(page)
    morsel = state_cookie(page)
    assert morsel["httponly"] and morsel["samesite"] == "Lax" and morsel["path"] == "/"
    assert not morsel["secure"]  # served over http here
    assert int(morsel["max-age"]) == 600
    authorize_url = authorize_url_from_install_page(page.text)
    state = query_of(authorize_url)["state"]
    assert len(state) >= 43 and state in morsel.value  # 256 bits, url-safe base64

    # Every callback outcome: success, cancelled, missing state, other browser, reused state.
    callback = standin.approve(authorize_url, team_id=ws.team_id)
    outcomes = {"success": browser.get(callback)}
    browser2 = Browser()
    outcomes["cancelled"] = browser2.get(standin.cancel(authorize_url_from_install_page(
        browser2.get(f"{server.url}/slack/install").text)))
    outcomes["missing_state"] = Browser().get(f"{server.url}/slack/oauth_redirect?code=abc")
    outcomes["other_browser"] = Browser().get(callback)
    outcomes["reused_state"] = browser.get(callback)
    statuses = {k: r.status for k, r in outcomes.items()}
    assert statuses["success"] == 200 and statuses["cancelled"] == 200, statuses
    assert all(400 <= statuses[k] < 500 for k in ("missing_state", "other_browser", "reused_state")), statuses
    for name, response in outcomes.items():
        assert_page_headers(response)
        for set_cookie in response.headers.get_all("Set-Cookie") or []:
            # Whatever the callback does with the state cookie, it keeps the flags.
            assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie and "Path=/" in set_cookie, name
            assert "Secure" not in set_cookie, name

    # Behind https (PUBLIC_URL): Secure; the redirect-style install carries the same headers.
    secure = app_server_factory(sqlite_url.replace("app.db", "secure.db"), PUBLIC_URL="https://app.example.com",
                                SLACK_INSTALL_PAGE="redirect")
    redirect = Browser().get(f"{secure.url}/slack/install")
    assert redirect.status == 302
    assert_page_headers(redirect)
    assert state_cookie(redirect)["secure"] and state_cookie(redirect)["httponly"]
    failure = Browser().get(f"{secure.url}/slack/oauth_redirect?error=access_denied&state=x")
    assert_page_headers(failure)
    for set_cookie in failure.headers.get_all("Set-Cookie") or []:
        assert "; Secure" in set_cookie and "HttpOnly" in set_cookie


def test_signature_headers_are_required_on_the_raw_bytes(standin, app_server_factory, sqlite_url) -> None:
    server = app_server_factory(sqlite_url)
    body = b'{"type":"event_callback","team_id":"T1","event":{"type":"app_mention"}}'
    headers = signed_headers(SIGNING_SECRET, body)
    # Same bytes re-serialised differently (whitespace): the signature no longer matches.
    assert Browser().request("POST", server.events_url, body=body.replace(b",", b", "), headers=headers).status == 401


def test_the_state_cookie_is_secure_behind_a_tls_proxy_trusted_by_gunicorn(standin, app_server_factory, sqlite_url) -> None:
    """A TLS-terminating proxy forwards plain http with X-Forwarded-Proto: https. gunicorn believes
    that header only from FORWARDED_ALLOW_IPS (default: loopback, where these requests come from)."""
    proxied = {"X-Forwarded-Proto": "https"}
    # No address configured: the request decides.
    trusting = app_server_factory(sqlite_url, SLACK_REDIRECT_URI="")
    page = Browser().get(f"{trusting.url}/slack/install", headers=proxied)
    assert page.status == 200
    cookie = page.header("Set-Cookie")
    assert cookie.startswith("__Host-slack-app-oauth-state-") and "; Secure" in cookie and "; Path=/;" in cookie
    plain = Browser().get(f"{trusting.url}/slack/install").header("Set-Cookie")
    assert "Secure" not in plain and not plain.startswith("__Host-")  # http on 127.0.0.1: local development
    # Reached under a public name without a proxy saying https: production all the same.
    public = Browser().get(f"{trusting.url}/slack/install", headers={"Host": "app.example.com"})
    assert public.header("Set-Cookie").startswith("__Host-") and "; Secure" in public.header("Set-Cookie")

    # The same header from an address gunicorn is not told to trust changes nothing.
    distrusting = app_server_factory(sqlite_url.replace("app.db", "other.db"), SLACK_REDIRECT_URI="",
                                     FORWARDED_ALLOW_IPS="192.0.2.1")
    cookie = Browser().get(f"{distrusting.url}/slack/install", headers=proxied).header("Set-Cookie")
    assert "Secure" not in cookie and not cookie.startswith("__Host-")


def test_a_production_address_makes_the_cookie_secure_whatever_the_scheme(standin, app_server_factory,
                                                                          sqlite_url) -> None:
    # PUBLIC_URL says http (the app behind a proxy sees http): not loopback, so production.
    server = app_server_factory(sqlite_url, PUBLIC_URL="http://app.example.com")
    ws = standin.create_workspace(name="Behind a proxy")
    browser = Browser()
    page = browser.get(f"{server.url}/slack/install")
    assert page.header("Set-Cookie").startswith("__Host-") and "; Secure" in page.header("Set-Cookie")
    # The install completes with the prefixed cookie (this test browser sends it over http).
    callback = standin.approve(authorize_url_from_install_page(page.text), team_id=ws.team_id)
    done = browser.get(callback)
    assert done.status == 200, done.text[:300]
    assert all(c.startswith("__Host-") and "; Secure" in c for c in done.headers.get_all("Set-Cookie"))


def test_a_team_parameter_cannot_inject_into_the_authorize_url_or_the_headers(standin, app_server_factory,
                                                                              sqlite_url) -> None:
    page = app_server_factory(sqlite_url)
    redirect = app_server_factory(sqlite_url.replace("app.db", "redirect.db"), SLACK_INSTALL_PAGE="redirect")
    injected = "/slack/install?team=T1%26redirect_uri%3Dhttps%3A%2F%2Fevil.example%2Fcb%26scope%3Dadmin"
    crlf = "/slack/install?team=T1%0d%0aSet-Cookie:%20planted=1"
    for server in (page, redirect):
        for path in (injected, crlf):
            response = Browser().get(server.url + path)
            assert response.status == 400, (server.url, path, response.status)
            assert response.header("Location") is None and "planted" not in str(response.headers)
            assert "evil.example" not in response.text
            assert_page_headers(response)
        assert "Traceback" not in server.logs()
    # A real team id still pre-selects the workspace.
    ws = standin.create_workspace(name="Preselected")
    location = Browser().get(f"{redirect.url}/slack/install?team={ws.team_id}").header("Location")
    assert location.endswith(f"&team={ws.team_id}") and query_of(location)["team"] == ws.team_id
