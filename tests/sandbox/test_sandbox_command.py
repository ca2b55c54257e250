"""`python main.py sandbox` as a newcomer runs it: a subprocess that prints its URLs, serves the
console, talks to the app, stops cleanly on Ctrl-C (SIGINT) and SIGTERM, and keeps its folder
(credentials, installations, tokens) from one start to the next."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from slack_standin.sandbox import port_is_free
from slack_standin.harness import PROJECT_ROOT, Browser, authorize_url_from_install_page, free_port, wait_for

pytestmark = pytest.mark.slow

START_TIMEOUT = 60


class SandboxCommand:
    """`python main.py sandbox` in a working directory, with its printed URLs."""

    def __init__(self, cwd: Path, *args: str, env: dict[str, str] | None = None):
        self.cwd = cwd
        self.port, self.app_port = free_port(), free_port()
        while self.app_port == self.port:
            self.app_port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "main.py"), "sandbox", "--port", str(self.port),
             "--app-port", str(self.app_port), *args],
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.output = self._read_until_ready()
        self.console = self._url("Console")
        self.install_page = self._url("App install page")

    def _read_until_ready(self) -> str:
        lines: list[str] = []
        deadline = time.time() + START_TIMEOUT
        assert self.process.stdout is not None
        while time.time() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops" in line:
                return "".join(lines)
        self.process.kill()
        _, err = self.process.communicate()
        raise AssertionError(f"the sandbox did not start:\n{''.join(lines)}\n{err}")

    def _url(self, label: str) -> str:
        match = re.search(rf"^\s*{label}:\s+(http://\S+)$", self.output, re.MULTILINE)
        assert match, self.output
        return match.group(1)

    def api(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        response = Browser().request("POST", f"{self.console}console/api/{action}", body=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        assert response.status == 200, response.text
        return response.json()

    def state(self, team: str | None = None) -> dict[str, Any]:
        return Browser().get(f"{self.console}console/api/state" + (f"?team={team}" if team else "")).json()

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str, str]:
        self.process.send_signal(sig)
        out, err = self.process.communicate(timeout=30)
        return self.process.returncode, out, err


@pytest.fixture
def commands() -> Iterator[list[SandboxCommand]]:
    started: list[SandboxCommand] = []
    yield started
    for command in started:
        if command.process.poll() is None:
            command.process.kill()
            command.process.wait()


def port_free(port: int) -> bool:
    """Nothing listens there any more (a server can bind it again; TIME_WAIT leftovers do not count)."""
    return port_is_free(port)


def install_over_http(command: SandboxCommand, team_name: str) -> str:
    """The console's "Install into a new workspace", clicked through without a browser."""
    created = command.api("workspaces", {"name": team_name})
    browser = Browser()
    page = browser.get(created["install_url"])
    assert page.status == 200, page.text
    authorize = authorize_url_from_install_page(page.text)
    consent = browser.get(authorize)
    assert consent.status == 200 and f'value="{created["team_id"]}" selected' in consent.text
    location = browser.get(authorize + f"&decision=allow&team={created['team_id']}").header("Location")
    callback = browser.get(location)
    assert callback.status == 200 and f"installed in {team_name}" in callback.text, callback.text
    return created["team_id"]


def mention_and_wait_for_reply(command: SandboxCommand, team: str, text: str) -> list[dict[str, Any]]:
    """Mention the bot; returns every bot reply so far once the new one has arrived (the reply is
    sent after the event is acknowledged)."""
    user = command.state(team)["workspace"]["users"][0]["id"]

    def replies() -> list[dict[str, Any]]:
        timeline = command.state(team)["workspace"]["timeline"]
        return [m for m in timeline if m["bot"] and "I run polls" in m["text"]]

    before = len(replies())
    assert command.api("send", {"team": team, "user": user, "text": f"@Workspace Helper {text}"})["status"] == 200
    return wait_for(lambda: replies() if len(replies()) > before else None)


def test_starts_prints_urls_serves_the_console_and_stops_on_ctrl_c(tmp_path, commands) -> None:
    # A developer's real Slack settings (environment or .env) must not reach the sandbox's app.
    command = SandboxCommand(tmp_path, env={"SLACK_APP_TOKEN": "xapp-1-real", "SLACK_BOT_TOKEN": "xoxb-real",
                                            "DATABASE_URL": "sqlite:///elsewhere.db"})
    commands.append(command)
    assert command.console == f"http://127.0.0.1:{command.port}/"
    assert command.install_page == f"http://127.0.0.1:{command.app_port}/slack/install"

    page = Browser().get(command.console)
    assert page.status == 200 and page.header("Content-Type").startswith("text/html")
    assert ">Install into a new workspace</button>" in page.text
    assert page.header("Content-Security-Policy") and not re.search(r"https?://", page.text)  # nothing external
    assert Browser().get(command.install_page).status == 200

    # Everything lives in ./sandbox: the generated credentials (private), the app's database and key.
    folder = tmp_path / "sandbox"
    credentials = json.loads((folder / "credentials.json").read_text())
    assert set(credentials) == {"client_id", "client_secret", "signing_secret", "app_id"}
    assert (folder / "credentials.json").stat().st_mode & 0o077 == 0
    assert (folder / "app.db").exists() and (folder / "app.db.key").exists()
    # No secret is printed.
    for value in (credentials["client_secret"], credentials["signing_secret"]):
        assert value not in command.output

    assert not (tmp_path / "elsewhere.db").exists()

    team = install_over_http(command, "Acme")
    assert len(mention_and_wait_for_reply(command, team, "hello")) == 1

    code, out, err = command.stop(signal.SIGINT)
    assert code == 0, (out, err)
    assert "Sandbox stopped." in out
    assert port_free(command.port) and port_free(command.app_port)
    for value in (credentials["client_secret"], credentials["signing_secret"]):
        assert value not in out + err + (folder / "app.log").read_text()
    state = (folder / "slack-standin.json")
    assert state.stat().st_mode & 0o077 == 0 and team in state.read_text()

    # A second start reuses the folder: same credentials, the installation and its tokens still work
    # on both sides (the app's database and the stand-in's saved state); SIGTERM stops it too.
    again = SandboxCommand(tmp_path)
    commands.append(again)
    assert "kept from the last run" in again.output
    assert json.loads((folder / "credentials.json").read_text()) == credentials
    assert [(w["team_id"], w["name"], w["installed"]) for w in again.state()["workspaces"]] == [(team, "Acme", True)]
    assert len(mention_and_wait_for_reply(again, team, "still there?")) == 2
    code, out, err = again.stop(signal.SIGTERM)
    assert code == 0, (out, err)
    assert port_free(again.port) and port_free(again.app_port)


def test_a_port_in_use_is_refused_clearly(tmp_path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, str(PROJECT_ROOT / "main.py"), "sandbox", "--port", str(port)],
            cwd=tmp_path, capture_output=True, text=True, timeout=30,
        )
    assert result.returncode == 2
    assert f"Port {port} is already in use" in result.stderr and "--port" in result.stderr
    assert not (tmp_path / "sandbox").exists()
