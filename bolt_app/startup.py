"""Checks made once before serving, so that an operator's mistake ends start-up with one line
that names the setting and the fix (exit code 2), not with a traceback from deep inside a
driver or a worker that fails to boot.

`bolt_app.cli` prints a `StartupError` as it is; at `LOG_LEVEL=DEBUG` the traceback of the
underlying error comes first.
"""

from __future__ import annotations

import errno
import logging
import socket
from urllib.parse import urlsplit

from bolt_app.settings import Settings

SLACK_CHECK_TIMEOUT_SECONDS = 10
# auth.test answers these when the token itself is wrong; anything else is Slack or the network.
REFUSED_TOKEN_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "not_allowed_token_type"}
)


class StartupError(Exception):
    """Start-up cannot go on until the operator changes something; the message says what."""


def check_port(host: str, port: int) -> None:
    """Fail now, before migrations and before "Serving on …", when HOST:PORT cannot be bound.

    gunicorn would otherwise retry for five seconds and then exit with its own messages. The probe
    binds the way gunicorn does (SO_REUSEADDR), so a port in TIME_WAIT counts as free.
    """
    if port == 0:
        return  # any free port
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise StartupError(
            f"HOST: {host!r} is not a name or address of this machine. Set HOST to one of its addresses, "
            "or to 0.0.0.0 to listen on all of them."
        ) from None
    family, kind, proto, _, address = infos[0]
    probe = socket.socket(family, kind, proto)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise StartupError(
                f"PORT: port {port} on {host} is already in use by another process. Stop that process, "
                "or set PORT to a free port."
            ) from None
        if error.errno in (errno.EACCES, errno.EPERM):
            raise StartupError(
                f"PORT: this user may not listen on port {port} (ports below 1024 need privileges). "
                "Set PORT to 1024 or above and let the reverse proxy listen on the privileged port."
            ) from None
        if error.errno == errno.EADDRNOTAVAIL:
            raise StartupError(
                f"HOST: {host} is not an address of this machine. Set HOST to one of its addresses, "
                "or to 0.0.0.0 to listen on all of them."
            ) from None
        raise StartupError(f"HOST/PORT: cannot listen on {host}:{port} ({error.strerror or error}).") from None
    finally:
        probe.close()


def check_slack(settings: Settings) -> None:
    """Single-workspace mode: Slack must answer and accept SLACK_BOT_TOKEN (Bolt checks it in
    every worker; a failure there is a traceback and "Worker failed to boot"). Socket Mode: Slack
    must be reachable (the app token itself is checked by the first connection)."""
    if settings.bot_token is None and not settings.socket_mode:
        return  # multi-workspace over HTTP: nothing to ask Slack before the first install
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    # One attempt, no retries; slack_sdk's own error lines would only repeat the message below.
    quiet = logging.getLogger(f"{__name__}.slack_check")
    quiet.setLevel(logging.NOTSET if logging.getLogger().isEnabledFor(logging.DEBUG) else logging.CRITICAL)
    client = WebClient(base_url=settings.api_url, timeout=SLACK_CHECK_TIMEOUT_SECONDS, logger=quiet, retry_handlers=[])
    try:
        if settings.bot_token is not None:
            client.auth_test(token=settings.bot_token)
        else:
            client.api_test()  # needs no token: reachability only
    except SlackApiError as error:
        code = str(error.response.get("error") or f"HTTP {error.response.status_code}")
        if code in REFUSED_TOKEN_ERRORS:
            raise StartupError(
                f"SLACK_BOT_TOKEN: Slack refused the bot token ({code}). Copy the Bot User OAuth Token (xoxb-…) "
                "from OAuth & Permissions of your app, or reinstall the app into the workspace."
            ) from error
        raise StartupError(
            f"SLACK_API_URL: Slack at {settings.api_url} answered {code} to a start-up check. "
            "Try again shortly; if it persists, check SLACK_API_URL."
        ) from error
    except Exception as error:  # DNS, refused connection, TLS, timeout: Slack was not reached
        raise StartupError(
            f"SLACK_API_URL: cannot reach Slack at {_host(settings.api_url)} ({_reason(error)}). Check this "
            "host's network access to it (DNS, firewall, HTTPS_PROXY), or correct SLACK_API_URL."
        ) from error


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _reason(error: BaseException) -> str:
    """A few words on why a connection failed, without the traceback."""
    reason = getattr(error, "reason", None)  # urllib's URLError wraps the socket error
    if isinstance(reason, BaseException):
        error = reason
    if isinstance(error, socket.gaierror):
        return "host name not found"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "timed out"
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return str(text).splitlines()[0][:120]
