"""Test helpers on top of slack_standin.harness (shared with the benchmarks and the sandbox)."""

from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlencode

from bolt_app.settings import Settings, load_settings
from bolt_app.web import create_wsgi_app
from slack_standin import SlackStandIn, signed_headers
from slack_standin.harness import (  # noqa: F401 - re-exported for the tests
    HARNESS_ENCRYPTION_KEY,
    PROJECT_ROOT,
    AppProcess,
    Browser,
    Response,
    authorize_url_from_install_page,
    app_env,
    free_port,
    install,
    query_of,
    wait_for,
)

CLIENT_ID = "1111.2222"
CLIENT_SECRET = "client-secret-for-tests-0123456789"
SIGNING_SECRET = "signing-secret-for-tests-abcdef"
# One fixed token encryption key for every app the tests build (in-process and server processes).
TEST_ENCRYPTION_KEY = HARNESS_ENCRYPTION_KEY


def base_env(standin: SlackStandIn, database_url: str) -> dict[str, str]:
    return {**app_env(standin, database_url), "SLACK_TOKEN_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY}


def settings_for(standin: SlackStandIn, database_url: str, **env: str) -> Settings:
    return load_settings({**base_env(standin, database_url), **env})


def install_direct(app, standin: SlackStandIn, team_id: str, *, user_id: str | None = None,
                   org_install: bool = False):  # type: ignore[no-untyped-def]
    """Install without HTTP: consent at the stand-in, then the app's own code exchange and store.

    For tests of the token machinery that need real installations but not the browser round-trip.
    """
    from slack_sdk.oauth import AuthorizeUrlGenerator

    settings = app.oauth_flow.settings
    url = AuthorizeUrlGenerator(
        client_id=settings.client_id,
        scopes=settings.scopes,
        user_scopes=settings.user_scopes,
        authorization_url=standin.authorize_url,
        redirect_uri="http://127.0.0.1:9/slack/oauth_redirect",
    ).generate(state="direct")
    location = standin.approve(url, team_id=team_id, user_id=user_id, org_install=org_install)
    installation = app.oauth_flow.run_installation(query_of(location)["code"])
    assert installation is not None
    app.installation_store.save(installation)
    return installation


def signed_post(url: str, body: bytes, content_type: str, *, secret: str = SIGNING_SECRET,
                timestamp: int | None = None, extra: dict | None = None) -> Response:
    headers = signed_headers(secret, body, timestamp=timestamp, content_type=content_type)
    headers.update(extra or {})
    return Browser().request("POST", url, body=body, headers=headers)


def form_body(fields: dict[str, Any]) -> bytes:
    return urlencode(fields).encode()


class AppServer(AppProcess):
    """A server process wired to the test stand-in; `request_url` follows the latest one started."""

    def __init__(self, *, standin: SlackStandIn, database_url: str, workdir: Path, extra_env: dict[str, str]):
        super().__init__(env={**base_env(standin, database_url), **extra_env}, workdir=workdir)
        self.standin = standin

    def start(self, timeout: float = 30) -> "AppServer":
        super().start(timeout)
        self.standin.request_url = self.events_url
        return self


def wsgi_environ(raw: bytes, headers: dict[str, str], path: str = "/slack/events") -> dict[str, Any]:
    """A WSGI environ for a request the stand-in captured (to call the app without a server)."""
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "",
               "CONTENT_LENGTH": str(len(raw)), "wsgi.input": io.BytesIO(raw)}
    environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
    environ["CONTENT_TYPE"] = headers.get("Content-Type", "application/json")
    return environ


def answer_in_process(app, raw: bytes, headers: dict) -> str:  # type: ignore[no-untyped-def]
    """Hand a captured request to the app's WSGI callable (no server); the answer's status line."""
    statuses: list[str] = []
    body = create_wsgi_app(app)(wsgi_environ(raw, headers), lambda status, _headers: statuses.append(status))
    list(body)
    getattr(body, "close", lambda: None)()
    return statuses[0]


def redelivered_mention(standin, ws) -> tuple[bytes, dict]:  # type: ignore[no-untyped-def]
    """A signed redelivery (X-Slack-Retry-Num: 1) of a new mention, captured instead of sent."""
    with standin.capturing_requests() as captured:
        first = standin.send_mention(ws, text="hello")
        standin.post_to_app(first.payload, "json", retry_num=1, kind="event")
    return captured[1]


@contextmanager
def deliveries_table_missing(engine) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Inside: every idempotency read or claim fails as in a database outage (the table is renamed
    away); restored on the way out."""
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE processed_deliveries RENAME TO processed_deliveries_away")
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE processed_deliveries_away RENAME TO processed_deliveries")
