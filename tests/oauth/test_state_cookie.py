"""The OAuth state cookie: one per install in flight, so two tabs of one browser can install two
workspaces at once; a finished install is remembered as "used" so a reload is told apart.

In-process (the flow object, no server, no browser): fast, and runs where Chromium is missing.
The same paths are clicked through in a real browser in tests/browser.
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from slack_bolt.request import BoltRequest

from bolt_app import database
from bolt_app.app import create_app
from bolt_app.oauth.flow import StateCookie
from tests.support import authorize_url_from_install_page, settings_for

NAME = "slack-app-oauth-state"


def cookie_utils(secure: bool = False) -> StateCookie:
    return StateCookie(cookie_name=NAME, expiration_seconds=600, secure=secure)


def test_each_state_gets_its_own_cookie() -> None:
    utils = cookie_utils()
    a, b = utils.build_set_cookie_for_new_state("state-a"), utils.build_set_cookie_for_new_state("state-b")
    name_a, name_b = a.split("=", 1)[0], b.split("=", 1)[0]
    assert name_a != name_b and name_a.startswith(NAME + "-") and name_a == utils.name_for("state-a")
    assert a.startswith(f"{name_a}=state-a;")
    for flag in ("HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=600"):
        assert flag in a
    assert "Secure" not in a and "; Secure" in cookie_utils(secure=True).build_set_cookie_for_new_state("s")


def test_browser_check_accepts_its_own_cookie_among_others_and_the_legacy_one() -> None:
    utils = cookie_utils()
    both = {"cookie": f"{utils.name_for('state-a')}=state-a; other=1; {utils.name_for('state-b')}=state-b"}
    assert utils.is_valid_browser("state-a", both) and utils.is_valid_browser("state-b", both)
    assert not utils.is_valid_browser("state-c", both)
    # A value copied under another state's name does not count.
    assert not utils.is_valid_browser("state-a", {"cookie": f"{utils.name_for('state-b')}=state-a"})
    # Cookies from before per-state names (an install in flight during a deploy) still work.
    assert utils.is_valid_browser("state-a", {"cookie": f"{NAME}=state-a"})
    assert utils.is_valid_browser("state-a", {"cookie": [f'{utils.name_for("state-a")}="state-a"']})
    for headers in ({}, {"cookie": ""}, None):
        assert not utils.is_valid_browser("state-a", headers)
    assert not utils.is_valid_browser(None, both) and not utils.is_valid_browser("", both)


def test_used_and_deleted_cookies() -> None:
    utils = cookie_utils()
    used = utils.build_set_cookie_for_used("state-a")
    assert used.startswith(f"{utils.name_for('state-a')}=used;") and "Max-Age=600" in used
    headers = {"cookie": used.split(";", 1)[0]}
    assert utils.was_used("state-a", headers) and not utils.is_valid_browser("state-a", headers)
    assert not utils.was_used("state-b", headers)
    deleted = utils.build_set_cookie_for_deletion("state-a")
    assert deleted.startswith(f"{utils.name_for('state-a')}=deleted;") and "Expires=Thu, 01 Jan 1970" in deleted
    assert utils.build_set_cookie_for_deletion().startswith(f"{NAME}=deleted;")


def test_secure_cookies_carry_the_host_prefix_and_only_prefixed_ones_are_read() -> None:
    utils = cookie_utils(secure=True)
    name = utils.name_for("state-a")
    assert name.startswith("__Host-" + NAME + "-") and name == "__Host-" + cookie_utils().name_for("state-a")
    for cookie in (utils.build_set_cookie_for_new_state("state-a"), utils.build_set_cookie_for_used("state-a"),
                   utils.build_set_cookie_for_deletion("state-a"), utils.build_set_cookie_for_deletion()):
        # What the __Host- prefix requires: Secure, Path=/, no Domain.
        assert cookie.startswith("__Host-") and "; Secure" in cookie and "; Path=/;" in cookie, cookie
        assert "domain" not in cookie.lower()
    assert utils.build_set_cookie_for_deletion().startswith(f"__Host-{NAME}=deleted;")
    assert utils.is_valid_browser("state-a", {"cookie": f"{name}=state-a"})
    # Unprefixed cookies (which any sibling subdomain or plain-http page could plant) are not read.
    for planted in (f"{cookie_utils().name_for('state-a')}=state-a", f"{NAME}=state-a"):
        assert not utils.is_valid_browser("state-a", {"cookie": planted}), planted
        assert cookie_utils().is_valid_browser("state-a", {"cookie": planted}), planted
    assert utils.was_used("state-a", {"cookie": f"{name}=used"})
    assert not utils.was_used("state-a", {"cookie": f"{cookie_utils().name_for('state-a')}=used"})


def request_with(scheme: str | None = None, host: str | None = None) -> BoltRequest:
    return BoltRequest(body="", query="", headers={"host": host} if host else {},
                       context={"url_scheme": scheme} if scheme else None)


@pytest.mark.parametrize("configured, scheme, host, expected", [
    (True, "http", "127.0.0.1:3000", True),       # production address: Secure whatever the request says
    (False, "http", "127.0.0.1:3000", False),     # local development over http
    (False, "http", "app.example.com", False),    # the address is configured: the Host does not matter
    (False, "https", "127.0.0.1:3000", True),     # arrived over https (a proxy gunicorn trusts said so)
    (None, "https", "localhost", True),
    (None, "http", "localhost:3000", False),
    (None, "http", "127.0.0.1", False),
    (None, "http", "[::1]:3000", False),
    (None, "http", "app.example.com", True),      # no address configured, reached under a public name
    (None, "http", "10.0.0.5:3000", True),
    (None, "http", None, True),                   # no Host at all: not known to be local
    (None, None, "127.0.0.1:3000", False),
])
def test_cookie_security_per_request(configured, scheme, host, expected) -> None:  # type: ignore[no-untyped-def]
    utils = cookie_utils(secure=configured)
    request = request_with(scheme, host)
    assert utils.secure_for(request) is expected
    with utils.serving(request):
        cookie = utils.build_set_cookie_for_new_state("s")
        assert ("; Secure" in cookie) is expected and cookie.startswith("__Host-") is expected
    # Outside a request, the configured value.
    assert ("; Secure" in utils.build_set_cookie_for_new_state("s")) is bool(configured)


class Jar:
    """Just enough of a browser's cookie jar for the flow's Set-Cookie headers."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def take(self, response) -> None:  # type: ignore[no-untyped-def]
        for value in response.headers.get("set-cookie", []):
            cookie = SimpleCookie()
            cookie.load(value)
            for name, morsel in cookie.items():
                if morsel["expires"].startswith("Thu, 01 Jan 1970"):
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def headers(self) -> dict[str, str]:
        return {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}


@pytest.fixture
def flow(standin, sqlite_url):  # type: ignore[no-untyped-def]
    engine = database.create_engine(sqlite_url, pool_size=5)
    database.upgrade(engine)
    settings = settings_for(standin, sqlite_url, SLACK_REDIRECT_URI="http://127.0.0.1:9/slack/oauth_redirect")
    app = create_app(settings, engine=engine)
    yield app.oauth_flow
    engine.dispose()


def start(flow, jar: Jar) -> str:  # type: ignore[no-untyped-def]
    response = flow.handle_installation(BoltRequest(body="", query="", headers=jar.headers()))
    assert response.status == 200
    jar.take(response)
    return authorize_url_from_install_page(response.body)


def finish(flow, jar: Jar, callback_url: str):  # type: ignore[no-untyped-def]
    response = flow.handle_callback(BoltRequest(body="", query=urlsplit(callback_url).query, headers=jar.headers()))
    jar.take(response)
    return response


def installed_teams(url: str) -> list[str]:
    engine = database.create_engine(url, pool_size=1)
    with engine.connect() as conn:
        teams = conn.execute(sa.text("SELECT team_id FROM slack_installations ORDER BY team_id")).scalars().all()
    engine.dispose()
    return list(teams)


def test_two_installs_in_one_browser_reload_and_cancel(  # type: ignore[no-untyped-def]
    flow, standin, sqlite_url
) -> None:
    one, two, three = (standin.create_workspace(name=n) for n in ("One", "Two", "Three"))
    jar = Jar()
    url_one, url_two, url_three = start(flow, jar), start(flow, jar), start(flow, jar)
    assert len(jar.cookies) == 3

    # Cancelling one install leaves the others in flight.
    cancelled = finish(flow, jar, standin.cancel(url_three))
    assert cancelled.status == 200 and "Installation cancelled" in cancelled.body
    assert len(jar.cookies) == 2

    # Finished in the opposite order to the one they were started in.
    callback_two = standin.approve(url_two, team_id=two.team_id)
    callback_one = standin.approve(url_one, team_id=one.team_id)
    assert finish(flow, jar, callback_two).status == 200
    assert finish(flow, jar, callback_one).status == 200
    assert installed_teams(sqlite_url) == sorted([one.team_id, two.team_id])
    assert sorted(jar.cookies.values()) == ["used", "used"]

    # Reloading a finished callback: "already used", twice, and nothing more stored.
    for _ in range(2):
        reloaded = finish(flow, jar, callback_one)
        assert reloaded.status == 401 and "This install link was already used" in reloaded.body
    # The same URL in a browser without the cookie is another browser.
    elsewhere = finish(flow, Jar(), callback_two)
    assert elsewhere.status == 400 and "Please finish in the same browser" in elsewhere.body
    assert installed_teams(sqlite_url) == sorted([one.team_id, two.team_id])
    assert three.installed is False


def test_an_install_behind_a_tls_proxy_sets_and_reads_host_prefixed_cookies(standin, sqlite_url) -> None:  # type: ignore[no-untyped-def]
    engine = database.create_engine(sqlite_url, pool_size=5)
    database.upgrade(engine)
    # No PUBLIC_URL / SLACK_REDIRECT_URI: each request says how it arrived.
    app = create_app(settings_for(standin, sqlite_url, SLACK_REDIRECT_URI=""), engine=engine)
    flow = app.oauth_flow
    standin.redirect_uri = "https://app.example.com/slack/oauth_redirect"  # as configured at Slack
    ws = standin.create_workspace(name="Proxied")
    jar = Jar()

    def request(query: str = "") -> BoltRequest:
        return BoltRequest(body="", query=query, headers={**jar.headers(), "host": "127.0.0.1:3000"},
                           context={"url_scheme": "https"})

    page = flow.handle_installation(request())
    assert page.status == 200
    (set_cookie,) = page.headers["set-cookie"]
    assert set_cookie.startswith("__Host-slack-app-oauth-state-") and "; Secure" in set_cookie
    jar.take(page)
    callback = standin.approve(authorize_url_from_install_page(page.body), team_id=ws.team_id)
    done = flow.handle_callback(request(urlsplit(callback).query))
    assert done.status == 200, done.body[:300]
    assert all(c.startswith("__Host-") and "; Secure" in c for c in done.headers["set-cookie"])
    jar.take(done)
    assert installed_teams(sqlite_url) == [ws.team_id]
    # The reload is told apart with the prefixed "used" cookie too.
    assert flow.handle_callback(request(urlsplit(callback).query)).status == 401
    engine.dispose()
