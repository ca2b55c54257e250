"""Operator mistakes at start-up: each ends with exit code 2 and one line that names the setting
and the fix; no traceback unless LOG_LEVEL=DEBUG asks for it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from slack_standin import SlackStandIn
from slack_standin.harness import SERVER_URLS, free_port
from tests.conftest import REQUIRED, _unreachable_reason
from tests.support import PROJECT_ROOT, TEST_ENCRYPTION_KEY

MULTI_WORKSPACE = {
    "SLACK_SIGNING_SECRET": "signing-secret-for-tests-abcdef",
    "SLACK_CLIENT_ID": "1111.2222",
    "SLACK_CLIENT_SECRET": "client-secret-for-tests-0123456789",
    "SLACK_TOKEN_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
}


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused at once)."""
    return free_port()


def start(cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`python main.py` as an operator starts it; returns once it exits (it must, on a mistake)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_", "LOG_LEVEL"))}
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "main.py")],
        env={**inherited, "HOST": "127.0.0.1", "PORT": "0", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def the_one_line(result: subprocess.CompletedProcess, setting: str, fix: str, path: Path | None = None) -> str:
    """Exit code 2, nothing but one short line (not counting a `path` it names), naming the setting and the fix."""
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    lines = output.splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith(f"{setting}:") and fix in lines[0], lines[0]
    assert len(lines[0].replace(str(path), "…") if path else lines[0]) < 200, lines[0]
    return lines[0]


def server_or_skip(backend: str) -> None:
    reason = _unreachable_reason(backend)
    if reason is not None:
        if backend in REQUIRED:
            pytest.fail(f"{reason} (required by REQUIRE_DB_BACKENDS)")
        pytest.skip(reason)


# ------------------------------------------------------------------------ 1. server unreachable


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_database_server_unreachable(scheme: str, tmp_path: Path) -> None:
    port = closed_port()
    result = start(tmp_path, **MULTI_WORKSPACE, DATABASE_URL=f"{scheme}://app:secret-pw@127.0.0.1:{port}/slackapp")
    line = the_one_line(result, "DATABASE_URL", "Start the database server")
    assert f"127.0.0.1:{port}" in line and "connection refused" in line
    assert "secret-pw" not in line


# ------------------------------------------------------------------------ 2. no such database


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_database_named_in_the_url_does_not_exist(backend: str, tmp_path: Path) -> None:
    server_or_skip(backend)
    name = f"missing_{uuid.uuid4().hex[:8]}"
    url = sa.engine.make_url(SERVER_URLS[backend]).set(database=name).render_as_string(hide_password=False)
    result = start(tmp_path, **MULTI_WORKSPACE, DATABASE_URL=url)
    line = the_one_line(result, "DATABASE_URL", "CREATE DATABASE" if backend == "mariadb" else "createdb")
    assert f"{name!r} does not exist" in line


# ------------------------------------------------------------------------ 3. SQLite folder missing


@pytest.mark.parametrize("with_key", [True, False], ids=["keys-set", "key-file"])
def test_sqlite_folder_that_does_not_exist(with_key: bool, tmp_path: Path) -> None:
    # Without SLACK_TOKEN_ENCRYPTION_KEYS the key file beside the database is the first thing written.
    env = dict(MULTI_WORKSPACE)
    if not with_key:
        del env["SLACK_TOKEN_ENCRYPTION_KEYS"]
    result = start(tmp_path, **env, DATABASE_URL="sqlite:///no/such/folder/app.db")
    line = the_one_line(result, "DATABASE_URL", "Create it", path=tmp_path)
    assert str(tmp_path / "no" / "such" / "folder") in line
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------ 4. in-memory SQLite


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_is_refused_with_the_reason(url: str, tmp_path: Path) -> None:
    result = start(tmp_path, **MULTI_WORKSPACE, DATABASE_URL=url)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2, output
    assert "Traceback" not in output and "max_overflow" not in output
    # A configuration problem: reported in the settings message, one line per problem.
    [problem] = [line for line in output.splitlines() if line.lstrip().startswith("- ")]
    assert "DATABASE_URL" in problem and "in-memory" in problem and "sqlite:///slack_app.db" in problem


# ------------------------------------------------------------------------ 5. port taken


def test_port_already_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = start(tmp_path, **MULTI_WORKSPACE, DATABASE_URL=f"sqlite:///{tmp_path / 'app.db'}", PORT=str(port))
    line = the_one_line(result, "PORT", "set PORT to a free port")
    assert f"port {port}" in line and "already in use" in line
    assert not (tmp_path / "app.db").exists()  # found before anything was migrated or served


# ------------------------------------------------------------------------ 6. Slack unreachable or refusing


def test_single_workspace_http_when_slack_cannot_be_reached(tmp_path: Path) -> None:
    result = start(tmp_path, SLACK_SIGNING_SECRET="signing-secret-for-tests-abcdef", SLACK_BOT_TOKEN="xoxb-1-2-3",
                   SLACK_API_URL=f"http://127.0.0.1:{closed_port()}/api/", DATABASE_URL=f"sqlite:///{tmp_path / 'a.db'}")
    line = the_one_line(result, "SLACK_API_URL", "correct SLACK_API_URL")
    assert "cannot reach Slack" in line and "connection refused" in line


def test_single_workspace_http_when_slack_refuses_the_token(standin: SlackStandIn, tmp_path: Path) -> None:
    result = start(tmp_path, SLACK_SIGNING_SECRET="signing-secret-for-tests-abcdef", SLACK_BOT_TOKEN="xoxb-not-a-real-one",
                   SLACK_API_URL=standin.api_url, DATABASE_URL=f"sqlite:///{tmp_path / 'a.db'}")
    line = the_one_line(result, "SLACK_BOT_TOKEN", "Bot User OAuth Token")
    assert "refused" in line and "invalid_auth" in line


def test_socket_mode_when_slack_cannot_be_reached(tmp_path: Path) -> None:
    result = start(tmp_path, SLACK_APP_TOKEN="xapp-1-A1-2-abc", SLACK_CLIENT_ID="1111.2222",
                   SLACK_CLIENT_SECRET="client-secret-for-tests-0123456789", SLACK_TOKEN_ENCRYPTION_KEYS=TEST_ENCRYPTION_KEY,
                   SLACK_API_URL=f"http://127.0.0.1:{closed_port()}/api/", DATABASE_URL=f"sqlite:///{tmp_path / 'a.db'}")
    the_one_line(result, "SLACK_API_URL", "cannot reach Slack")


def test_socket_mode_when_slack_refuses_the_bot_token(standin: SlackStandIn, tmp_path: Path) -> None:
    result = start(tmp_path, SLACK_APP_TOKEN=standin.app_token, SLACK_BOT_TOKEN="xoxb-not-a-real-one",
                   SLACK_API_URL=standin.api_url, DATABASE_URL=f"sqlite:///{tmp_path / 'a.db'}")
    the_one_line(result, "SLACK_BOT_TOKEN", "Bot User OAuth Token")


# ------------------------------------------------------------------------ the traceback, on request


def test_log_level_debug_shows_the_traceback_before_the_line(tmp_path: Path) -> None:
    result = start(tmp_path, **MULTI_WORKSPACE, LOG_LEVEL="DEBUG",
                   DATABASE_URL=f"postgresql://app@127.0.0.1:{closed_port()}/slackapp")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "OperationalError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("DATABASE_URL: cannot reach PostgreSQL")
