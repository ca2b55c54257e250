"""OAuth failures: the right page and status, and never an installation row."""

from __future__ import annotations

import sqlalchemy as sa

from bolt_app import database
from tests.support import Browser, authorize_url_from_install_page, query_of


def installation_rows(url: str) -> int:
    engine = database.create_engine(url, pool_size=1)
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT (SELECT COUNT(*) FROM slack_installations) + (SELECT COUNT(*) FROM slack_bots)")).scalar()
    engine.dispose()
    return int(count)


def start_install(server_url: str) -> tuple[Browser, str]:
    browser = Browser()
    page = browser.get(f"{server_url}/slack/install")
    assert page.status == 200
    return browser, authorize_url_from_install_page(page.text)


def test_oauth_failures_show_the_reason_and_store_nothing(standin, app_server_factory, sqlite_url) -> None:
    server = app_server_factory(sqlite_url)
    ws = standin.create_workspace(name="Failure Co")

    # Cancelled on the consent screen.
    browser, authorize_url = start_install(server.url)
    response = browser.get(standin.cancel(authorize_url))
    assert response.status == 200 and "cancel" in response.text.lower()
    assert "/slack/install" in response.text  # a retry link

    # Missing state.
    response = Browser().get(f"{server.url}/slack/oauth_redirect?code=whatever")
    assert response.status == 400

    # State from another browser (no cookie).
    _, authorize_url = start_install(server.url)
    callback = standin.approve(authorize_url, team_id=ws.team_id)
    response = Browser().get(callback)
    assert response.status == 400 and "browser" in response.text.lower()

    # Expired state: the row's expiry passes before the callback.
    browser, authorize_url = start_install(server.url)
    callback = standin.approve(authorize_url, team_id=ws.team_id)
    engine = database.create_engine(sqlite_url, pool_size=1)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE slack_oauth_states SET expire_at = '2000-01-01 00:00:00'"))
    engine.dispose()
    response = browser.get(callback)
    assert response.status == 401 and "expired" in response.text.lower()
    assert installation_rows(sqlite_url) == 0

    # Reused code: a fresh state with a code that was already spent.
    browser, authorize_url = start_install(server.url)
    callback = standin.approve(authorize_url, team_id=ws.team_id)
    assert browser.get(callback).status == 200  # the good install
    assert installation_rows(sqlite_url) == 2
    spent_code = query_of(callback)["code"]
    browser2, authorize_url2 = start_install(server.url)
    state2 = query_of(authorize_url2)["state"]
    response = browser2.get(f"{server.url}/slack/oauth_redirect?code={spent_code}&state={state2}")
    assert response.status == 401 and "code" in response.text.lower()

    # Reused state: replaying the good callback (same browser, same cookie value) fails.
    browser.cookies["slack-app-oauth-state"] = query_of(callback)["state"]
    response = browser.get(callback)
    assert response.status == 401
    assert installation_rows(sqlite_url) == 2  # only the one good install

    # The server kept serving throughout.
    assert Browser().get(f"{server.url}/healthz").json() == {"status": "ok", "database": "ok"}


def test_wrong_client_secret_is_an_invalid_code(standin, app_server_factory, sqlite_url) -> None:
    server = app_server_factory(sqlite_url, SLACK_CLIENT_SECRET="not-the-right-secret")
    ws = standin.create_workspace()
    browser, authorize_url = start_install(server.url)
    response = browser.get(standin.approve(authorize_url, team_id=ws.team_id))
    assert response.status == 401
    assert installation_rows(sqlite_url) == 0
    assert "not-the-right-secret" not in server.logs()


def test_state_cookie_flags(standin, app_server_factory, sqlite_url) -> None:
    server = app_server_factory(sqlite_url)
    response = Browser().get(f"{server.url}/slack/install")
    cookie = response.header("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert response.header("X-Frame-Options") == "DENY"
    assert response.header("Cache-Control") == "no-store"
    assert "default-src 'none'" in response.header("Content-Security-Policy")

    secure = app_server_factory(sqlite_url.replace("app.db", "secure.db"), PUBLIC_URL="https://app.example.com")
    assert "Secure" in Browser().get(f"{secure.url}/slack/install").header("Set-Cookie")
