"""Driving the real app against the stand-in: app processes, a cookie-keeping browser, the OAuth
round-trip. Shared by the test suite, the benchmarks and the sandbox so there is one way to do it.
"""

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
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import parse_qs, urlparse

import sqlalchemy as sa

from slack_standin.server import SlackStandIn

PROJECT_ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
# The database servers tests and benchmarks create their scratch databases on.
SERVER_URLS = {
    "postgresql": os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
    "mariadb": os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/"),
}


def scratch_database(backend: str, prefix: str) -> tuple[str, Callable[[], None]]:
    """A brand-new empty database on the `backend` server of SERVER_URLS: its URL, and a function
    that drops it (connections still open to it are ended on PostgreSQL)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = sa.engine.make_url(SERVER_URLS[backend]).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        force = " WITH (FORCE)" if backend == "postgresql" else ""
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
        admin.dispose()

    return url, drop


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll until predicate() is truthy (listeners run after the ack, asynchronously)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


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
    """A minimal browser: keeps cookies, never follows redirects by itself."""

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
    match = re.search(r'<a[^>]+href="([^"]+)"[^>]*>\s*Add to Slack', page) or re.search(
        r'href="([^"]*client_id=[^"]*)"', page  # stock Bolt's page: the button is an image
    )
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
    """The real OAuth round-trip: install page → stand-in consent → callback with the state cookie."""
    browser = browser or Browser()
    page = browser.get(f"{app_url}/slack/install")
    if page.status != 200:
        raise RuntimeError(f"install page answered {page.status}: {page.text[:200]}")
    authorize_url = authorize_url_from_install_page(page.text)
    callback_url = standin.approve(authorize_url, team_id=team_id, user_id=user_id, org_install=org_install)
    return InstallResult(browser.get(callback_url), callback_url)


# A fixed token encryption key for apps driven by the harness (a server database requires one; the
# test process reads the same rows with it). Never use it outside tests, benchmarks and the sandbox.
HARNESS_ENCRYPTION_KEY = "NL4Uep0Uc7vVy-rKJv3DrCSpLyKnBrYupE1w2uRSkDI="


def app_env(standin: SlackStandIn, database_url: str) -> dict[str, str]:
    """Environment that points the app at the stand-in with matching credentials."""
    return {
        "SLACK_CLIENT_ID": standin.client_id,
        "SLACK_CLIENT_SECRET": standin.client_secret,
        "SLACK_SIGNING_SECRET": standin.signing_secret,
        "SLACK_API_URL": standin.api_url,
        "SLACK_AUTHORIZE_URL": standin.authorize_url,
        "DATABASE_URL": database_url,
        "SLACK_TOKEN_ENCRYPTION_KEYS": HARNESS_ENCRYPTION_KEY,
    }


class AppProcess:
    """`python main.py` (gunicorn, real workers) as a subprocess, on a free port of 127.0.0.1."""

    def __init__(self, *, env: dict[str, str], workdir: Path, port: int | None = None,
                 command: list[str] | None = None, cwd: Path | None = None):
        self.port = port or free_port()
        # Default: the app as users run it. Benchmarks pass other WSGI apps under gunicorn.
        self.command = command or [sys.executable, str(PROJECT_ROOT / "main.py")]
        # Default: the log directory. Slack CLI hooks run from the project directory.
        self.cwd = cwd
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(workdir) / f"server-{self.port}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_", "TASK_QUEUE_"))},
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "2",
            "WEB_THREADS": "8",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            "SLACK_REDIRECT_URI": f"{self.url}/slack/oauth_redirect",
            **env,
        }
        self.process: subprocess.Popen | None = None

    @property
    def events_url(self) -> str:
        return f"{self.url}/slack/events"

    def start(self, timeout: float = 30) -> "AppProcess":
        self._log_file = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            self.command,
            cwd=self.cwd or self.log_path.parent,
            env=self.env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.logs()}")
            try:
                if Browser().get(f"{self.url}/healthz").status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become healthy:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 25) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()
        return self.process.returncode


class WorkerProcess(AppProcess):
    """`python main.py worker` (the task queue's consumer) as a subprocess: no HTTP port; ready
    once it logs so (at INFO: keep LOG_LEVEL at INFO or DEBUG). Its environment is built like the
    server's (give it TASK_QUEUE_URL)."""

    def __init__(self, *, env: dict[str, str], workdir: Path, name: str = "worker"):
        super().__init__(env={"WORKER_THREADS": "4", **env}, workdir=workdir,
                         command=[sys.executable, str(PROJECT_ROOT / "main.py"), "worker"])
        self.log_path = Path(workdir) / f"{name}.log"

    def start(self, timeout: float = 30) -> "WorkerProcess":
        self._log_file = open(self.log_path, "wb")
        self.process = subprocess.Popen(self.command, cwd=self.cwd or self.log_path.parent, env=self.env,
                                        stdout=self._log_file, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.logs()}")
            if "Worker ready" in self.logs():
                return self
            time.sleep(0.1)
        self.process.kill()
        self.process.wait()
        raise RuntimeError(f"worker did not get ready:\n{self.logs()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """kill -9: no goodbye to Redis; the jobs in its hands stay unacknowledged."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 40) -> int | None:
        # The worker finishes its running jobs (up to 25 s) before it exits.
        return super().stop(timeout)
