"""Every table of the app, on one SQLAlchemy `MetaData` that Alembic migrates.

The Slack tables keep slack_sdk's SQLAlchemy store names and columns (so data from a stock
Bolt deployment carries over) and extend them:

- `workspace_key` — "<enterprise id>:<team id>" with empty parts for NULLs. SQL treats NULLs as
  distinct in unique indexes, so the NULL-able id pair cannot be the unique key itself; this
  column can, and it makes every per-workspace lookup a single indexed equality.
- one row per workspace (bots) and per workspace + user (installations): rotation updates that
  row in place under a row lock instead of appending history.
- `status` — "ok" or "needs_reinstall" (a refresh token Slack no longer accepts).
- token columns are encrypted at rest (`EncryptedToken`), wide enough for the Fernet text.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from bolt_app.storage.crypto import EncryptedToken

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Credentials are stored encrypted (Fernet token text, fits in 1024): see bolt_app.storage.crypto.
TOKEN = EncryptedToken()
STATUS_OK = "ok"
STATUS_NEEDS_REINSTALL = "needs_reinstall"


def workspace_key(enterprise_id: str | None, team_id: str | None) -> str:
    """The one key that names a workspace (or an org-wide install when team_id is None)."""
    return f"{enterprise_id or ''}:{team_id or ''}"


def _workspace_columns() -> list[sa.Column]:
    return [
        sa.Column("client_id", sa.String(32), nullable=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("workspace_key", sa.String(80), nullable=False),
        sa.Column("enterprise_id", sa.String(32)),
        sa.Column("enterprise_name", sa.String(200)),
        sa.Column("team_id", sa.String(32)),
        sa.Column("team_name", sa.String(200)),
        sa.Column("bot_token", TOKEN),
        sa.Column("bot_id", sa.String(32)),
        sa.Column("bot_user_id", sa.String(32)),
        sa.Column("bot_scopes", sa.String(1000)),
        sa.Column("bot_refresh_token", TOKEN),
        sa.Column("bot_token_expires_at", sa.DateTime),
        sa.Column("is_enterprise_install", sa.Boolean, nullable=False, default=False),
        sa.Column("installed_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("status", sa.String(32), nullable=False, default=STATUS_OK),
        sa.Column("status_reason", sa.String(200)),
    ]


bots = sa.Table(
    "slack_bots",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    *_workspace_columns(),
    sa.UniqueConstraint("client_id", "workspace_key"),
    # The installing side of a Slack Connect view is looked up by team id or bot id (migration 0004).
    sa.Index(None, "client_id", "team_id"),
    sa.Index(None, "client_id", "bot_id"),
)

installations = sa.Table(
    "slack_installations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    *_workspace_columns(),
    sa.Column("enterprise_url", sa.String(200)),
    sa.Column("user_id", sa.String(32), nullable=False),
    sa.Column("user_token", TOKEN),
    sa.Column("user_scopes", sa.String(1000)),
    sa.Column("user_refresh_token", TOKEN),
    sa.Column("user_token_expires_at", sa.DateTime),
    sa.Column("incoming_webhook_url", TOKEN),
    sa.Column("incoming_webhook_channel", sa.String(200)),
    sa.Column("incoming_webhook_channel_id", sa.String(200)),
    sa.Column("incoming_webhook_configuration_url", sa.String(200)),
    sa.Column("token_type", sa.String(32)),
    sa.UniqueConstraint("client_id", "workspace_key", "user_id"),
    sa.Index(None, "client_id", "workspace_key", "installed_at"),
)

oauth_states = sa.Table(
    "slack_oauth_states",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("state", sa.String(200), nullable=False),
    sa.Column("expire_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("state"),
    sa.Index(None, "expire_at"),
)


def to_db_time(epoch_seconds: float | None) -> datetime | None:
    """Epoch seconds → naive UTC datetime, the form the DateTime columns hold."""
    if epoch_seconds is None:
        return None
    return datetime.fromtimestamp(epoch_seconds, tz=timezone.utc).replace(tzinfo=None)


def from_db_time(value: datetime | None) -> int | None:
    """Naive UTC datetime from the database → epoch seconds (never read as local time)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp())


def utc_now() -> datetime:
    return datetime.now(tz=timezone.utc).replace(tzinfo=None)
