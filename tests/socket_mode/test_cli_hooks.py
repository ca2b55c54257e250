"""The Slack CLI project files: hooks run the way the CLI runs them (a subprocess in the project
directory, the command split on spaces, the answer read from stdout)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bolt_app.cli_hooks import start_env
from bolt_app.manifest import load_manifest
from slack_standin import SlackStandIn
from slack_standin.harness import PROJECT_ROOT, wait_for
from tests.socket_mode.conftest import StartApp, single_workspace_bot_token
from tests.test_manifest import validate

SLACK_DIR = PROJECT_ROOT / ".slack"


def hook_command(name: str) -> list[str]:
    hooks = json.loads((SLACK_DIR / "hooks.json").read_text())["hooks"]
    return hooks[name].split()  # the CLI splits on whitespace (no shell)


def cli_env(**extra: str) -> dict[str, str]:
    # An activated virtualenv: `python3` is the project's interpreter.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
    return {**base, "PATH": path, **extra}


def merged(defaults: dict, project: dict) -> dict:
    """The CLI's view: the get-hooks answer as defaults, the project's hooks.json over it, key by key."""
    out = dict(defaults)
    for key, value in project.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def test_project_files_declare_the_hooks_the_cli_needs() -> None:
    project = json.loads((SLACK_DIR / "hooks.json").read_text())
    # get-hooks is Slack's own (slack-cli-hooks): the CLI runs it first, with no protocol flags.
    assert project["hooks"]["get-hooks"].split()[-1] == "slack_cli_hooks.hooks.get_hooks"
    done = subprocess.run(hook_command("get-hooks"), cwd=PROJECT_ROOT, env=cli_env(), capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    config = merged(json.loads(done.stdout), project)

    hooks = config["hooks"]
    # Ours only where this app differs: the YAML manifest and the token handling of `start`.
    assert hooks["get-manifest"] == "python3 -m bolt_app.cli_hooks get-manifest"
    assert hooks["start"] == "python3 -m bolt_app.cli_hooks start"
    assert {"check-update", "doctor"} <= set(hooks)  # from slack-cli-hooks
    assert all("slack_cli_hooks" in hooks[name] for name in ("check-update", "doctor"))
    settings = config["config"]
    assert settings["protocol-version"][0] == "message-boundaries"
    # The app manages its own Socket Mode connection (Bolt apps do).
    assert settings["sdk-managed-connection-enabled"] is True
    # Watch, in the current format: the app's Python files restart it, manifest.yml reinstalls it.
    watch = settings["watch"]
    assert "filter-regex" not in watch and "paths" not in watch  # not the older flat format
    assert watch["manifest"]["paths"] == ["manifest.yml"] and "filter-regex" not in watch["manifest"]
    app_watch = re.compile(watch["app"]["filter-regex"])
    assert app_watch.search("poll.py") and not app_watch.search("manifest.yml")
    for path in watch["app"]["paths"] + watch["manifest"]["paths"]:
        assert (PROJECT_ROOT / path).exists(), path
    assert {"main.py", "bolt_app"} <= set(watch["app"]["paths"])  # not ".": no polling of .venv

    project_config = json.loads((SLACK_DIR / "config.json").read_text())
    assert project_config["manifest"]["source"] == "local" and project_config["project_id"]
    assert "apps.dev.json" in (SLACK_DIR / ".gitignore").read_text()  # per-developer app ids stay local


def test_get_manifest_hook_speaks_the_negotiated_protocol() -> None:
    command = hook_command("get-manifest") + ["--protocol", "message-boundaries", "--boundary", "b0und4ry"]
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=cli_env(), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    _, answer, rest = done.stdout.split("b0und4ry")
    assert json.loads(answer)["settings"]["socket_mode_enabled"] is True and rest.strip() == ""


def test_get_manifest_hook_prints_manifest_yml_as_schema_valid_socket_mode_json() -> None:
    done = subprocess.run(hook_command("get-manifest"), cwd=PROJECT_ROOT, env=cli_env(), capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)  # stdout is the answer and nothing else
    validate(manifest)
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert "request_url" not in json.dumps(manifest) and all(
        "url" not in command for command in manifest.get("features", {}).get("slash_commands", [])
    )
    # The same manifest as manifest.yml, only the Socket Mode switches differ.
    source = load_manifest()
    for key in ("display_information", "oauth_config", "_metadata"):
        assert manifest[key] == source[key]
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == source["settings"]["event_subscriptions"]["bot_events"]


def test_start_hook_maps_the_cli_tokens() -> None:
    cli = {"SLACK_CLI_XAPP": "xapp-cli", "SLACK_CLI_XOXB": "xoxb-cli", "PORT": "3000"}
    single = start_env(cli, {})
    assert single["SLACK_APP_TOKEN"] == "xapp-cli" and single["SLACK_BOT_TOKEN"] == "xoxb-cli"
    # The CLI's tokens belong to the app it runs: they win over older ones in the environment.
    assert start_env({**cli, "SLACK_APP_TOKEN": "xapp-old"}, {})["SLACK_APP_TOKEN"] == "xapp-cli"
    # Multi-workspace (client id in the environment or .env): tokens come from installations.
    for environ, dotenv in (({**cli, "SLACK_CLIENT_ID": "1.2", "SLACK_BOT_TOKEN": "xoxb-cli"}, {}),
                            (cli, {"SLACK_CLIENT_ID": "1.2"})):
        multi = start_env(environ, dotenv)
        assert multi["SLACK_APP_TOKEN"] == "xapp-cli" and "SLACK_BOT_TOKEN" not in multi
    with pytest.raises(ValueError, match="SLACK_CLI_XAPP"):
        start_env({"SLACK_CLI_XOXB": "xoxb-cli"}, {})


def test_start_hook_runs_the_app_like_slack_run_and_ctrl_c_exits_0(
    standin: SlackStandIn, socket_app: StartApp
) -> None:
    ws = standin.create_workspace(name="Dev")
    bot = single_workspace_bot_token(standin, ws.team_id)
    app = socket_app(
        command=hook_command("start"),
        cwd=PROJECT_ROOT,
        # What `slack run` hands the hook: its development app's tokens (and .env's settings).
        SLACK_CLI_XAPP=standin.app_token,
        SLACK_CLI_XOXB=bot,
        SLACK_APP_TOKEN="",
        SLACK_CLIENT_ID="",
        SLACK_CLIENT_SECRET="",
    )
    assert standin.send_mention(ws, "hi from slack run").acked
    [reply] = wait_for(lambda: [c for c in standin.calls_for("chat.postMessage") if c.ok])
    assert reply.token == bot

    assert app.process is not None
    app.process.send_signal(signal.SIGINT)  # Ctrl-C in the terminal running `slack run`
    assert app.process.wait(timeout=15) == 0, app.logs()
