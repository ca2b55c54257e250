"""Fixtures for Socket Mode: the app as a real process (`python main.py`, or the Slack CLI's start
hook) connected to the stand-in's websocket server."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.oauth import AuthorizeUrlGenerator

from slack_standin import SlackStandIn
from slack_standin.harness import AppProcess
from tests.support import base_env, query_of

StartApp = Callable[..., AppProcess]


@pytest.fixture
def socket_app(standin: SlackStandIn, tmp_path: Path) -> Iterator[StartApp]:
    """Start the app in Socket Mode (multi-workspace unless `bot_token=` is given); stopped after the test.

    Every delivery of the test goes over the socket (`standin.delivery`); start() returns once
    /healthz says the socket is connected.
    """
    standin.delivery = "socket"
    started: list[AppProcess] = []

    def start(*, bot_token: str | None = None, command: list[str] | None = None, cwd: Path | None = None,
              **env: str) -> AppProcess:
        full = {
            **base_env(standin, f"sqlite:///{tmp_path / 'app.db'}"),
            "SLACK_APP_TOKEN": standin.app_token,
            "SLACK_SIGNING_SECRET": "",  # nothing arrives over HTTP: Socket Mode needs no signing secret
            # `python3` in .slack/hooks.json resolves in the virtualenv, as in an activated shell.
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        }
        if bot_token is not None:
            full.update(SLACK_CLIENT_ID="", SLACK_CLIENT_SECRET="", SLACK_BOT_TOKEN=bot_token)
        full.update(env)
        process = AppProcess(env=full, workdir=tmp_path, command=command, cwd=cwd)
        started.append(process)
        process.start()
        return process

    yield start
    for process in started:
        process.stop()


def single_workspace_bot_token(standin: SlackStandIn, team_id: str) -> str:
    """A bot token the way a single-workspace app gets one: installed once, token copied from the app config."""
    redirect = "http://127.0.0.1:9/cb"
    url = AuthorizeUrlGenerator(client_id=standin.client_id, scopes=["app_mentions:read", "chat:write", "commands"],
                                authorization_url=standin.authorize_url, redirect_uri=redirect).generate(state="s")
    code = query_of(standin.approve(url, team_id=team_id))["code"]
    return WebClient(base_url=standin.api_url).oauth_v2_access(
        client_id=standin.client_id, client_secret=standin.client_secret, code=code, redirect_uri=redirect
    )["access_token"]
