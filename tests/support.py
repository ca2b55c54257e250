"""Test helpers: a cookie-keeping HTTP client, real server processes, the OAuth round-trip."""

from __future__ import annotations

import html
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from bolt_app.settings import Settings, load_settings
from bolt_app.standin import SlackStandIn, signed_headers

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CLIENT_ID = "1111.2222"
CLIENT_SECRET = "client-secret-for-tests-0123456789"
SIGNING_SECRET = "signing-secret-for-tests-abcdef"


def base_env(standin: SlackStandIn, database_url: str) -> dict[str, str]:
    return {
        "SLACK_CLIENT_ID": CLIENT_ID,
        "SLACK_CLIENT_SECRET": CLIENT_SECRET,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": standin.api_url,
        "SLACK_AUTHORIZE_URL": standin.authorize_url,
        "DATABASE_URL": database_url,
    }


def settings_for(standin: SlackStandIn, database_url: str, **env: str) -> Settings:
    return load_settings({**base_env(standin, database_url), **env})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class Browser:
    """A minimal browser: keeps cookies per host, never follows redirects by itself."""

    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> Response:
        parsed = urlparse(url)
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        all_headers = dict(headers or {})
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request(method, path, body=body, headers=all_headers)
        raw = conn.getresponse()
        response = Response(raw.status, raw.headers, raw.read())
        conn.close()
        for value in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(value)
            for name, morsel in cookie.items():
                if morsel.value == "deleted" or morsel["expires"].startswith("Thu, 01 Jan 1970"):
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    def get(self, url: str, headers: dict | None = None) -> Response:
        return self.request("GET", url, headers=headers)


def authorize_url_from_install_page(page: str) -> str:
    match = re.search(r'<a[^>]+href="([^"]+)"[^>]*>\s*Add to Slack', page)
    assert match, "install page has no Add to Slack link"
    return html.unescape(match.group(1))


@dataclass
class InstallResult:
    response: Response
    callback_url: str


def install(
    app_url: str,
    standin: SlackStandIn,
    team_id: str,
    *,
    user_id: str | None = None,
    org_install: bool = False,
    browser: Browser | None = None,
) -> InstallResult:
    """The real OAuth round-trip: install page → stand-in consent → callback with cookie."""
    browser = browser or Browser()
    page = browser.get(f"{app_url}/slack/install")
    assert page.status == 200, page.text
    authorize_url = authorize_url_from_install_page(page.text)
    callback_url = standin.approve(authorize_url, team_id=team_id, user_id=user_id, org_install=org_install)
    return InstallResult(browser.get(callback_url), callback_url)


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


class AppServer:
    """`python main.py` as a subprocess (gunicorn, real workers) against the stand-in."""

    def __init__(self, *, standin: SlackStandIn, database_url: str, workdir: Path, extra_env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"server-{self.port}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))},
            **base_env(standin, database_url),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "2",
            "WEB_THREADS": "8",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            "SLACK_REDIRECT_URI": f"http://127.0.0.1:{self.port}/slack/oauth_redirect",
            **extra_env,
        }
        self.process: subprocess.Popen | None = None
        self.standin = standin

    def start(self, timeout: float = 30) -> None:
        self.log_file = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "main.py")],
            cwd=self.log_path.parent,
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.logs()}")
            try:
                if Browser().get(f"{self.url}/healthz").status == 200:
                    self.standin.request_url = f"{self.url}/slack/events"
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become healthy:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()
        return self.process.returncode

    def events_url(self) -> str:
        return f"{self.url}/slack/events"


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll until predicate() is truthy (listeners run after the ack, asynchronously)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()
