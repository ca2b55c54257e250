"""One settings object, built from the environment and validated once at start-up.

Every problem is collected and reported together in one `SettingsError`, so an operator fixes
the whole configuration in one go instead of one variable per restart. Secret values never
appear in reprs or error messages.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields
from typing import Literal, Mapping
from urllib.parse import urlparse

from bolt_app.manifest import manifest_scopes

DEFAULT_DATABASE_URL = "sqlite:///slack_app.db"
DEFAULT_API_URL = "https://slack.com/api/"
DEFAULT_AUTHORIZE_URL = "https://slack.com/oauth/v2/authorize"
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
LOG_FORMATS = ("text", "json")

# What each command needs: serving HTTP needs the signing secret; admin commands only the database;
# a queue worker (`python main.py worker`) needs the credentials and TASK_QUEUE_URL.
Purpose = Literal["serve", "socket", "admin", "worker"]


class SettingsError(Exception):
    """Raised with every configuration problem at once."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"The app cannot start: {len(problems)} configuration problem(s).\n{lines}\n"
            "Set these in the environment (or in a .env file for local use); see README.md."
        )


@dataclass(frozen=True)
class Settings:
    """Validated configuration. Secrets are excluded from the generated repr."""

    signing_secret: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ()
    user_scopes: tuple[str, ...] = ()
    redirect_uri: str | None = None
    bot_token: str | None = field(default=None, repr=False)
    app_token: str | None = field(default=None, repr=False)
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)
    api_url: str = DEFAULT_API_URL
    authorize_url: str = DEFAULT_AUTHORIZE_URL
    public_url: str | None = None
    host: str = "0.0.0.0"
    port: int = 3000
    web_concurrency: int = 2
    web_threads: int = 8
    log_level: str = "INFO"
    install_page_enabled: bool = True
    state_expiration_seconds: int = 600
    token_refresh_minutes: int = 120
    token_refresh_interval_minutes: int = 0
    auto_migrate: bool | None = None
    token_encryption_keys: tuple[str, ...] = field(default=(), repr=False)
    query_stats_dir: str | None = None
    # Lazy work on a queue (bolt_app/background.py) instead of this process's threads; may hold a password.
    task_queue_url: str | None = field(default=None, repr=False)
    worker_threads: int = 8
    # How much lower the CPU priority of work after the answer is (lazy threads, queue workers).
    background_nice: int = 10
    # Structured logs (one JSON object per line) instead of text lines.
    log_format: str = "text"
    # Prometheus metrics on their own port, on HOST like the app; None: not served.
    metrics_port: int | None = None

    @property
    def multi_workspace(self) -> bool:
        return self.client_id is not None

    @property
    def socket_mode(self) -> bool:
        return self.app_token is not None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def database_url_for_display(self) -> str:
        """The database URL with any password masked, for logs."""
        return mask_url_password(self.database_url)

    @property
    def task_queue_url_for_display(self) -> str | None:
        """TASK_QUEUE_URL with any password masked, for logs."""
        return mask_url_password(self.task_queue_url) if self.task_queue_url else None

    @property
    def secure_cookies(self) -> bool | None:
        """Whether cookies carry `Secure`, from the app's address (PUBLIC_URL, else SLACK_REDIRECT_URI):
        True for https or any host but a loopback one (production, whatever the scheme: behind a
        TLS-terminating proxy the app itself sees http); False for plain http on localhost,
        127.0.0.1 or ::1 (local development); None when neither is set (decided per request from
        the scheme gunicorn reports, trusting X-Forwarded-Proto only from FORWARDED_ALLOW_IPS, and
        the Host the browser used)."""
        url = self.public_url or self.redirect_uri
        if not url:
            return None
        parsed = urlparse(url)
        return parsed.scheme == "https" or not is_loopback(parsed.hostname)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value set, for log masking."""
        values = (self.signing_secret, self.client_secret, self.bot_token, self.app_token)
        queue_password = urlparse(self.task_queue_url).password if self.task_queue_url else None
        return tuple(v for v in values + self.token_encryption_keys + (queue_password,) if v)

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "task_queue_url":
                shown.append(f"{f.name}={self.task_queue_url_for_display!r}")
                continue
            shown.append(f"{f.name}={value!r}" if f.repr else f"{f.name}={'***' if value else None}")
        return f"Settings({', '.join(shown)})"


def is_loopback(host: str | None) -> bool:
    """localhost (and names under it), 127.0.0.0/8 or ::1: a host name or address, without port."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def mask_url_password(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
        return parsed._replace(netloc=netloc).geturl()
    return url


def _is_memory_sqlite(url: str) -> bool:
    parsed = urlparse(url)
    if not parsed.scheme.startswith("sqlite"):
        return False
    return parsed.path in ("", "/", "/:memory:") or "mode=memory" in parsed.query


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


class _Reader:
    """Reads typed values from the environment, collecting problems instead of raising."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.problems: list[str] = []

    def text(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{name} must be a whole number (got {raw!r}).")
            return default
        if not minimum <= value <= maximum:
            self.problems.append(f"{name} must be between {minimum} and {maximum} (got {value}).")
            return default
        return value

    def boolean(self, name: str, default: bool | None) -> bool | None:
        raw = self.text(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        self.problems.append(f"{name} must be true or false (got {raw!r}).")
        return default

    def url(self, name: str, default: str | None, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
        raw = self.text(name)
        if raw is None:
            return default
        parsed = urlparse(raw)
        if parsed.scheme not in schemes or not parsed.netloc:
            self.problems.append(f"{name} must be an absolute {' or '.join(schemes)} URL (got {raw!r}).")
            return default
        return raw

    def secret(self, name: str, prefixes: tuple[str, ...] = ()) -> str | None:
        value = self.text(name)
        if value is not None and prefixes and not value.startswith(prefixes):
            # Never echo the value: it may be a real secret pasted into the wrong variable.
            self.problems.append(f"{name} must start with {' or '.join(prefixes)}; the value set does not.")
            return None
        return value


def load_settings(env: Mapping[str, str] | None = None, purpose: Purpose = "serve") -> Settings:
    """Build and validate settings; raise `SettingsError` naming every problem."""
    env = os.environ if env is None else env
    r = _Reader(env)

    signing_secret = r.secret("SLACK_SIGNING_SECRET")
    client_id = r.text("SLACK_CLIENT_ID")
    client_secret = r.secret("SLACK_CLIENT_SECRET")
    bot_token = r.secret("SLACK_BOT_TOKEN", ("xoxb-", "xoxe.xoxb-"))
    app_token = r.secret("SLACK_APP_TOKEN", ("xapp-",))

    if client_id and not client_secret:
        r.problems.append("SLACK_CLIENT_SECRET is required with SLACK_CLIENT_ID (Basic Information > App Credentials).")
    if client_secret and not client_id:
        r.problems.append("SLACK_CLIENT_ID is required with SLACK_CLIENT_SECRET (Basic Information > App Credentials).")
    if (client_id or client_secret) and env.get("SLACK_BOT_TOKEN", "").strip():
        r.problems.append(
            "Both multi-workspace (SLACK_CLIENT_ID/SLACK_CLIENT_SECRET) and single-workspace (SLACK_BOT_TOKEN) "
            "settings are set. Multi-workspace mode takes each workspace's token from installations; "
            "unset SLACK_BOT_TOKEN for it, or unset the client id and secret to run in one workspace."
        )
    if purpose != "admin" and not (client_id or client_secret or env.get("SLACK_BOT_TOKEN", "").strip()):
        r.problems.append(
            "No Slack credentials: set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (multi-workspace, installs through "
            "/slack/install) or SLACK_BOT_TOKEN (one workspace)."
        )
    socket = purpose == "socket" or (purpose == "serve" and app_token is not None)
    if purpose == "serve" and not socket and not signing_secret:
        r.problems.append("SLACK_SIGNING_SECRET is required to serve HTTP (Basic Information > App Credentials).")

    manifest_bot, manifest_user = manifest_scopes()
    scopes_raw = r.text("SLACK_SCOPES")
    user_scopes_raw = r.text("SLACK_USER_SCOPES")
    scopes = _split_list(scopes_raw) if scopes_raw is not None else tuple(manifest_bot)
    user_scopes = _split_list(user_scopes_raw) if user_scopes_raw is not None else tuple(manifest_user)
    if client_id and not scopes and not user_scopes:
        r.problems.append("No OAuth scopes: declare them in manifest.yml (oauth_config.scopes) or set SLACK_SCOPES.")

    database_url = r.text("DATABASE_URL") or DEFAULT_DATABASE_URL
    if not database_url.startswith(("sqlite", "postgres", "postgresql", "mysql", "mariadb")):
        r.problems.append(
            "DATABASE_URL must be a sqlite:///, postgresql:// or mysql:// URL "
            f"(got one starting with {database_url.split(':', 1)[0]!r})."
        )
    elif _is_memory_sqlite(database_url):
        r.problems.append(
            "DATABASE_URL names an in-memory SQLite database: each process (the start-up migration, every "
            "worker) would get its own empty one, lost on restart. Use a file (sqlite:///slack_app.db) or a "
            "server database."
        )

    log_level = (r.text("LOG_LEVEL") or "INFO").upper()
    if log_level not in LOG_LEVELS:
        r.problems.append(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)} (got {log_level!r}).")
        log_level = "INFO"

    log_format = (r.text("LOG_FORMAT") or "text").lower()
    if log_format not in LOG_FORMATS:
        r.problems.append(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)} (got {log_format!r}).")
        log_format = "text"

    install_mode = (r.text("SLACK_INSTALL_PAGE") or "page").lower()
    if install_mode not in ("page", "redirect"):
        r.problems.append(f"SLACK_INSTALL_PAGE must be 'page' or 'redirect' (got {install_mode!r}).")

    task_queue_url = _task_queue_url(r)
    if purpose == "worker" and task_queue_url is None and not r.text("TASK_QUEUE_URL"):
        r.problems.append("TASK_QUEUE_URL is required to run a worker (the Redis URL the web processes enqueue to).")

    keys = _split_list(r.text("SLACK_TOKEN_ENCRYPTION_KEYS") or "")
    if keys:
        from bolt_app.storage.crypto import invalid_key_positions

        bad = invalid_key_positions(keys)
        if bad:  # never echo the values: they are secrets, possibly pasted into the wrong variable
            r.problems.append(
                f"SLACK_TOKEN_ENCRYPTION_KEYS: the key(s) at position {', '.join(map(str, bad))} are not Fernet keys "
                "(url-safe base64 of 32 bytes; `python main.py keys generate` prints one)."
            )

    port = r.integer("PORT", 3000, 0, 65535)
    metrics_port = r.integer("METRICS_PORT", 0, 1, 65535) if r.text("METRICS_PORT") else None
    if metrics_port is not None and metrics_port == port:
        r.problems.append(
            f"METRICS_PORT must differ from PORT (both are {port}): metrics are never served on the port Slack reaches."
        )

    settings = Settings(
        signing_secret=signing_secret,
        client_id=client_id,
        client_secret=client_secret,
        scopes=scopes,
        user_scopes=user_scopes,
        redirect_uri=r.url("SLACK_REDIRECT_URI", None),
        bot_token=bot_token if not client_id else None,
        app_token=app_token,
        database_url=database_url,
        api_url=_with_trailing_slash(r.url("SLACK_API_URL", DEFAULT_API_URL)),
        authorize_url=r.url("SLACK_AUTHORIZE_URL", DEFAULT_AUTHORIZE_URL) or DEFAULT_AUTHORIZE_URL,
        public_url=r.url("PUBLIC_URL", None),
        host=r.text("HOST") or "0.0.0.0",
        port=port,
        web_concurrency=r.integer("WEB_CONCURRENCY", 2, 1, 64),
        web_threads=r.integer("WEB_THREADS", 8, 1, 256),
        log_level=log_level,
        install_page_enabled=install_mode != "redirect",
        state_expiration_seconds=r.integer("SLACK_STATE_EXPIRATION_SECONDS", 600, 30, 86400),
        token_refresh_minutes=r.integer("SLACK_TOKEN_REFRESH_MINUTES", 120, 1, 720),
        token_refresh_interval_minutes=r.integer("SLACK_TOKEN_REFRESH_INTERVAL_MINUTES", 0, 0, 1440),
        auto_migrate=r.boolean("DATABASE_AUTO_MIGRATE", None),
        token_encryption_keys=keys,
        query_stats_dir=r.text("QUERY_STATS_DIR"),
        task_queue_url=task_queue_url,
        worker_threads=r.integer("WORKER_THREADS", 8, 1, 256),
        background_nice=r.integer("BACKGROUND_NICE", 10, 0, 19),
        log_format=log_format,
        metrics_port=metrics_port or None,
    )
    if r.problems:
        raise SettingsError(r.problems)
    return settings


def _task_queue_url(r: _Reader) -> str | None:
    """TASK_QUEUE_URL: a Redis URL (redis:// or rediss://, optionally with a database number as its path)."""
    raw = r.text("TASK_QUEUE_URL")
    if raw is None:
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
        # Never echo the value: it may carry the Redis password.
        r.problems.append("TASK_QUEUE_URL must be a redis:// or rediss:// URL with a host (e.g. redis://127.0.0.1:6379/0).")
        return None
    database = parsed.path.strip("/")
    try:
        port_ok = parsed.port is None or parsed.port > 0
    except ValueError:
        port_ok = False
    if not port_ok or (database and not database.isdigit()):
        r.problems.append("TASK_QUEUE_URL: the port and the database number (the path, e.g. /0) must be whole numbers.")
        return None
    return raw


def _with_trailing_slash(url: str | None) -> str:
    url = url or DEFAULT_API_URL
    return url if url.endswith("/") else url + "/"
