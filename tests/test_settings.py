"""Settings: every problem named in one message, secrets never echoed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bolt_app.settings import SettingsError, load_settings
from tests.support import PROJECT_ROOT

GOOD = {
    "SLACK_CLIENT_ID": "123.456",
    "SLACK_CLIENT_SECRET": "very-secret-client-value",
    "SLACK_SIGNING_SECRET": "very-secret-signing-value",
}


def problems(env: dict[str, str], purpose: str = "serve") -> list[str]:
    with pytest.raises(SettingsError) as info:
        load_settings(env, purpose=purpose)  # type: ignore[arg-type]
    return info.value.problems


def test_multi_workspace_defaults_take_scopes_from_manifest() -> None:
    settings = load_settings(GOOD)
    assert settings.multi_workspace and not settings.socket_mode
    assert "chat:write" in settings.scopes and "app_mentions:read" in settings.scopes
    assert settings.api_url == "https://slack.com/api/"
    assert settings.authorize_url == "https://slack.com/oauth/v2/authorize"
    assert settings.database_url.startswith("sqlite:///") and settings.port == 3000


def test_explicit_values_are_parsed() -> None:
    settings = load_settings({**GOOD, "SLACK_SCOPES": "chat:write, commands", "SLACK_USER_SCOPES": "search:read",
                              "SLACK_API_URL": "http://127.0.0.1:9/api", "PORT": "8080", "WEB_CONCURRENCY": "4",
                              "LOG_LEVEL": "debug"})
    assert settings.scopes == ("chat:write", "commands") and settings.user_scopes == ("search:read",)
    assert settings.api_url == "http://127.0.0.1:9/api/"  # slash added: slack_sdk joins method names onto it
    assert (settings.port, settings.web_concurrency, settings.log_level) == (8080, 4, "DEBUG")


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, ["No Slack credentials", "SLACK_SIGNING_SECRET is required"]),
        ({"SLACK_CLIENT_ID": "1.2", "SLACK_SIGNING_SECRET": "x" * 10}, ["SLACK_CLIENT_SECRET is required"]),
        ({"SLACK_CLIENT_SECRET": "abcdefgh", "SLACK_SIGNING_SECRET": "x" * 10}, ["SLACK_CLIENT_ID is required"]),
        ({**GOOD, "SLACK_BOT_TOKEN": "xoxb-1-2"}, ["Both multi-workspace"]),
        ({**GOOD, "PORT": "http"}, ["PORT must be a whole number"]),
        ({**GOOD, "PORT": "70000"}, ["PORT must be between"]),
        ({**GOOD, "WEB_CONCURRENCY": "0"}, ["WEB_CONCURRENCY must be between"]),
        ({**GOOD, "LOG_LEVEL": "chatty"}, ["LOG_LEVEL must be one of"]),
        ({**GOOD, "SLACK_API_URL": "slack.com/api"}, ["SLACK_API_URL must be an absolute"]),
        ({**GOOD, "SLACK_AUTHORIZE_URL": "ftp://x/y"}, ["SLACK_AUTHORIZE_URL must be an absolute"]),
        ({**GOOD, "DATABASE_URL": "oracle://db"}, ["DATABASE_URL must be"]),
        ({**GOOD, "SLACK_APP_TOKEN": "xoxb-wrong-kind"}, ["SLACK_APP_TOKEN must start with xapp-"]),
        ({"SLACK_BOT_TOKEN": "not-a-token", "SLACK_SIGNING_SECRET": "abcdefgh"}, ["SLACK_BOT_TOKEN must start"]),
    ],
)
def test_each_problem_is_named(env: dict[str, str], expected: list[str]) -> None:
    found = problems(env)
    for text in expected:
        assert any(text in p for p in found), (text, found)


def test_all_problems_reported_together_without_secret_values() -> None:
    env = {"SLACK_CLIENT_ID": "1.2", "SLACK_BOT_TOKEN": "xoxb-secret-bot-token-value", "PORT": "x",
           "LOG_LEVEL": "x", "SLACK_APP_TOKEN": "secret-app-token-value"}
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    message = str(info.value)
    assert len(info.value.problems) >= 5
    assert "secret-bot-token" not in message and "secret-app-token" not in message
    assert message.count("\n  - ") == len(info.value.problems)


def test_single_workspace_mode() -> None:
    settings = load_settings({"SLACK_BOT_TOKEN": "xoxb-123-abc", "SLACK_SIGNING_SECRET": "abcdefgh"})
    assert not settings.multi_workspace and settings.bot_token == "xoxb-123-abc"


def test_admin_commands_need_no_slack_credentials() -> None:
    assert load_settings({}, purpose="admin").database_url.startswith("sqlite")


def test_socket_mode_needs_no_signing_secret() -> None:
    settings = load_settings({"SLACK_BOT_TOKEN": "xoxb-1-a", "SLACK_APP_TOKEN": "xapp-1-a"})
    assert settings.socket_mode


def test_repr_masks_secrets() -> None:
    settings = load_settings({**GOOD, "DATABASE_URL": "postgresql://u:db-password-value@h/db"})
    text = repr(settings) + str(settings)
    for secret in ("very-secret-client-value", "very-secret-signing-value", "db-password-value"):
        assert secret not in text
    assert "client_id='123.456'" in text
    assert "db-password-value" not in settings.database_url_for_display


def test_cookies_are_secure_unless_the_app_is_plain_http_on_loopback() -> None:
    def secure(**env: str) -> bool | None:
        return load_settings({**GOOD, **env}).secure_cookies

    # No address configured: decided per request (see tests/oauth/test_state_cookie.py).
    assert secure() is None
    assert secure(PUBLIC_URL="https://app.example.com") is True
    # Behind a TLS-terminating proxy the configured address may say http: production all the same.
    assert secure(PUBLIC_URL="http://app.example.com") is True
    assert secure(SLACK_REDIRECT_URI="http://10.0.0.5:3000/slack/oauth_redirect") is True
    assert secure(SLACK_REDIRECT_URI="https://127.0.0.1:3000/slack/oauth_redirect") is True
    for local in ("http://localhost:3000", "http://127.0.0.1:3000", "http://[::1]:3000", "http://127.1.2.3",
                  "http://app.localhost:3000"):
        assert secure(PUBLIC_URL=local) is False, local
        assert secure(SLACK_REDIRECT_URI=local + "/slack/oauth_redirect") is False, local
    # PUBLIC_URL is the app's address when both are set.
    assert secure(PUBLIC_URL="http://localhost:3000", SLACK_REDIRECT_URI="https://app.example.com/cb") is False
    assert secure(PUBLIC_URL="https://app.example.com", SLACK_REDIRECT_URI="http://localhost:3000/cb") is True


def test_main_exits_nonzero_with_one_message(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "hush-hush-secret", "PORT": "x"}
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "main.py")], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("The app cannot start") == 1
    assert "SLACK_SIGNING_SECRET" in result.stderr and "PORT" in result.stderr
    assert "hush-hush-secret" not in result.stderr + result.stdout


def test_task_queue_settings() -> None:
    settings = load_settings({**GOOD, "TASK_QUEUE_URL": "redis://:queue-password-value@redis.internal:6379/3",
                              "WORKER_THREADS": "4"})
    assert settings.task_queue_url == "redis://:queue-password-value@redis.internal:6379/3"
    assert settings.worker_threads == 4
    assert settings.background_nice == 10 and load_settings({**GOOD, "BACKGROUND_NICE": "0"}).background_nice == 0
    assert "queue-password-value" not in repr(settings) and "queue-password-value" in settings.secrets
    assert settings.task_queue_url_for_display == "redis://:***@redis.internal:6379/3"
    assert load_settings(GOOD).task_queue_url is None
    assert load_settings({**GOOD, "TASK_QUEUE_URL": "rediss://redis.internal"}, purpose="worker").task_queue_url


@pytest.mark.parametrize(
    "env, purpose, expected",
    [
        ({**GOOD, "TASK_QUEUE_URL": "http://redis.internal"}, "serve", "TASK_QUEUE_URL must be a redis://"),
        ({**GOOD, "TASK_QUEUE_URL": "redis://redis.internal/zero"}, "serve", "database number"),
        ({**GOOD, "WORKER_THREADS": "0"}, "serve", "WORKER_THREADS must be between"),
        ({**GOOD, "BACKGROUND_NICE": "20"}, "worker", "BACKGROUND_NICE must be between"),
        (GOOD, "worker", "TASK_QUEUE_URL is required to run a worker"),
        ({"TASK_QUEUE_URL": "redis://h/1"}, "worker", "No Slack credentials"),
    ],
)
def test_task_queue_problems(env: dict[str, str], purpose: str, expected: str) -> None:
    found = problems(env, purpose)
    assert any(expected in p for p in found), found


def test_a_malformed_task_queue_url_is_never_echoed() -> None:
    found = problems({**GOOD, "TASK_QUEUE_URL": "redis:/hunter2-password@"})
    assert not any("hunter2" in p for p in found) and any("TASK_QUEUE_URL" in p for p in found)


def test_log_format_and_metrics_port() -> None:
    settings = load_settings(GOOD)
    assert settings.log_format == "text" and settings.metrics_port is None
    settings = load_settings({**GOOD, "LOG_FORMAT": "JSON", "METRICS_PORT": "9100"})
    assert settings.log_format == "json" and settings.metrics_port == 9100


def test_log_format_and_metrics_port_problems_are_named_together() -> None:
    found = problems({**GOOD, "LOG_FORMAT": "yaml", "METRICS_PORT": "metrics"})
    assert any("LOG_FORMAT must be one of text, json" in p for p in found), found
    assert any("METRICS_PORT must be a whole number" in p for p in found), found
    found = problems({**GOOD, "PORT": "3000", "METRICS_PORT": "3000"})
    assert any("METRICS_PORT must differ from PORT" in p for p in found), found
