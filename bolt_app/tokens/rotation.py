"""Token rotation: the only code that spends refresh tokens.

Slack refresh tokens are single-use. Rotation is therefore single-flight per installation across
threads, processes and hosts: the caller that needs a refresh takes a row lock on the
installation (SELECT … FOR UPDATE on PostgreSQL/MariaDB, BEGIN IMMEDIATE on SQLite), re-reads the
row, and refreshes only if the token it now sees is still due. Everyone who queued behind the lock
re-reads the new tokens instead of spending the old refresh token a second time.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import sqlalchemy as sa
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.engine import Connection, Engine

from bolt_app.database import lock_rows_to_update_values, write_transaction
from bolt_app.storage import tables
from bolt_app.telemetry import metrics
from bolt_app.storage.tables import (
    STATUS_NEEDS_REINSTALL,
    STATUS_OK,
    from_db_time,
    to_db_time,
    utc_now,
    workspace_key,
)

logger = logging.getLogger(__name__)

# Slack's answers that mean the refresh token will never work again: the workspace must reinstall.
PERMANENT_REFRESH_ERRORS = frozenset(
    {
        "invalid_refresh_token",
        "invalid_grant",
        "token_revoked",
        "app_uninstalled",
        "account_inactive",
        "invalid_client_id",
        "bad_client_secret",
    }
)


class TokenError(Exception):
    """Base class for token problems that end a request."""


class InstallationNeedsReinstall(TokenError):
    """Slack no longer accepts this installation's refresh token; only a reinstall helps."""

    def __init__(self, enterprise_id: str | None, team_id: str | None, reason: str):
        self.enterprise_id, self.team_id, self.reason = enterprise_id, team_id, reason
        super().__init__(f"installation enterprise_id={enterprise_id} team_id={team_id} needs reinstall ({reason})")


class TokensTemporarilyUnavailable(TokenError):
    """No valid token could be had right now (Slack or the database failing); Slack should retry."""


@dataclass(frozen=True)
class BotTokens:
    """What the authorize path needs from a workspace's bot row (secrets excluded from repr)."""

    workspace_key: str
    enterprise_id: str | None
    team_id: str | None
    team_name: str | None
    is_enterprise_install: bool
    bot_id: str | None
    bot_user_id: str | None
    bot_token: str | None
    bot_scopes: str | None
    expires_at: int | None
    has_refresh_token: bool
    status: str

    def __repr__(self) -> str:
        return f"BotTokens(workspace_key={self.workspace_key!r}, status={self.status!r}, expires_at={self.expires_at})"

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "BotTokens":
        return cls(
            workspace_key=row["workspace_key"],
            enterprise_id=row["enterprise_id"],
            team_id=row["team_id"],
            team_name=row["team_name"],
            is_enterprise_install=bool(row["is_enterprise_install"]),
            bot_id=row["bot_id"],
            bot_user_id=row["bot_user_id"],
            bot_token=row["bot_token"],
            bot_scopes=row["bot_scopes"],
            expires_at=from_db_time(row["bot_token_expires_at"]),
            has_refresh_token=_has_refresh_token(row, "bot_refresh_token"),
            status=row["status"],
        )


def _has_refresh_token(row: Mapping[str, Any], column: str) -> bool:
    # The hot-path reads select `has_refresh_token` (a flag computed in SQL): decrypting a refresh
    # token only to see that there is one costs as much as decrypting the access token.
    return bool(row["has_refresh_token"]) if "has_refresh_token" in row else row[column] is not None


@dataclass(frozen=True)
class UserTokens:
    workspace_key: str
    user_id: str
    user_token: str | None
    user_scopes: str | None
    expires_at: int | None
    has_refresh_token: bool
    status: str

    def __repr__(self) -> str:
        return f"UserTokens(workspace_key={self.workspace_key!r}, user_id={self.user_id!r}, status={self.status!r})"

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "UserTokens":
        return cls(
            workspace_key=row["workspace_key"],
            user_id=row["user_id"],
            user_token=row["user_token"],
            user_scopes=row["user_scopes"],
            expires_at=from_db_time(row["user_token_expires_at"]),
            has_refresh_token=_has_refresh_token(row, "user_refresh_token"),
            status=row["status"],
        )


# The authorize path's reads, built once (SQLAlchemy caches their compiled form; building the
# statement itself cost about a tenth of a read). Only what BotTokens / UserTokens hold is selected.
_bot = tables.bots.c
_READ_BOT = sa.select(
    _bot.workspace_key, _bot.enterprise_id, _bot.team_id, _bot.team_name, _bot.is_enterprise_install, _bot.bot_id,
    _bot.bot_user_id, _bot.bot_token, _bot.bot_scopes, _bot.bot_token_expires_at, _bot.status,
    _bot.bot_refresh_token.is_not(None).label("has_refresh_token"),
).where(_bot.client_id == sa.bindparam("client_id"), _bot.workspace_key == sa.bindparam("key"))
_user = tables.installations.c
_READ_USER = sa.select(
    _user.workspace_key, _user.user_id, _user.user_token, _user.user_scopes, _user.user_token_expires_at,
    _user.status, _user.user_refresh_token.is_not(None).label("has_refresh_token"),
).where(
    _user.client_id == sa.bindparam("client_id"),
    _user.workspace_key == sa.bindparam("key"),
    _user.user_id == sa.bindparam("user_id"),
)


@dataclass
class RefreshSummary:
    refreshed: int = 0
    up_to_date: int = 0
    failed: int = 0
    needs_reinstall: int = 0


class _Kind:
    """Column names and table of one token kind, so bot and user rotation share one code path."""

    def __init__(self, name: str, table: sa.Table, prefix: str):
        self.name, self.table, self.prefix = name, table, prefix
        self.token = table.c[f"{prefix}_token"]
        self.refresh_token = table.c[f"{prefix}_refresh_token"]
        self.expires_at = table.c[f"{prefix}_token_expires_at"]


BOT = _Kind("bot", tables.bots, "bot")
USER = _Kind("user", tables.installations, "user")


class TokenService:
    """Reads installations' tokens and refreshes them, single-flight, through the database."""

    def __init__(
        self,
        *,
        engine: Engine,
        client_id: str,
        client_secret: str,
        client: WebClient,
        refresh_before_seconds: int = 7200,
        lock_timeout_seconds: int = 15,
        transient_attempts: int = 3,
        on_rotated: Callable[[str], None] | None = None,
    ):
        self.engine = engine
        # Hot-path reads run outside a transaction: one statement, no BEGIN/ROLLBACK round-trips.
        self.read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.client_id = client_id
        self._client_secret = client_secret
        self.client = client
        self.refresh_before_seconds = refresh_before_seconds
        self.lock_timeout_seconds = lock_timeout_seconds
        self.transient_attempts = transient_attempts
        # Authorize caches subscribe so a rotation on this process is visible at once.
        self.on_rotated = on_rotated
        # Set by the app (tokens/installed.py): clients from `client_for` check it before each call.
        self.installed: Any = None
        self._reinstall_logged: set[str] = set()
        self._reinstall_logged_lock = threading.Lock()

    # ------------------------------------------------------------------ reads

    def is_due(self, expires_at: int | None, now: float | None = None) -> bool:
        if expires_at is None:
            return False
        return expires_at - (now if now is not None else time.time()) < self.refresh_before_seconds

    def read_bot(self, key: str) -> BotTokens | None:
        with self.read_engine.connect() as conn:
            row = conn.execute(_READ_BOT, {"client_id": self.client_id, "key": key}).first()
        return BotTokens.from_row(row._mapping) if row is not None else None

    def key_of_team(self, team_id: str) -> str | None:
        """The workspace key of the installation made in workspace `team_id` (not org-wide), with
        the enterprise it was stored with; None when the team has none."""
        c = tables.bots.c
        query = (
            sa.select(c.workspace_key)
            .where(c.client_id == self.client_id, c.team_id == team_id, c.is_enterprise_install.is_(False))
            .order_by(c.updated_at.desc())
            .limit(1)
        )
        with self.read_engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    def key_of_org_wide_bot(self, bot_id: str) -> str | None:
        """The workspace key of the org-wide installation whose bot is `bot_id`; None when none is."""
        c = tables.bots.c
        query = sa.select(c.workspace_key).where(
            c.client_id == self.client_id, c.bot_id == bot_id, c.is_enterprise_install.is_(True)
        ).limit(1)
        with self.read_engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    def read_user(self, key: str, user_id: str) -> UserTokens | None:
        with self.read_engine.connect() as conn:
            row = conn.execute(_READ_USER, {"client_id": self.client_id, "key": key, "user_id": user_id}).first()
        return UserTokens.from_row(row._mapping) if row is not None else None

    # ------------------------------------------------------------------ fresh tokens

    def fresh_bot(self, key: str) -> BotTokens | None:
        """The workspace's bot tokens, refreshed first when due. Raises TokenError subclasses."""
        bot = self.read_bot(key)
        if bot is None:
            return None
        self._raise_if_needs_reinstall(bot.status, bot.enterprise_id, bot.team_id)
        if bot.has_refresh_token and self.is_due(bot.expires_at):
            return self._refresh_or_fall_back(BOT, bot, lambda: self.refresh_bot(key))
        return bot

    def fresh_user(self, key: str, user_id: str) -> UserTokens | None:
        user = self.read_user(key, user_id)
        if user is None or user.status != STATUS_OK or user.user_token is None:
            return None
        if user.has_refresh_token and self.is_due(user.expires_at):
            try:
                return self._refresh_or_fall_back(USER, user, lambda: self.refresh_user(key, user_id))
            except InstallationNeedsReinstall:
                return None  # the user token is gone; the bot token still serves the request
        return user

    def _refresh_or_fall_back(self, kind: _Kind, current: Any, refresh: Callable[[], Any]) -> Any:
        try:
            refreshed = refresh()
            return refreshed if refreshed is not None else current
        except TokensTemporarilyUnavailable:
            # Slack or the lock is failing right now. A token that has not expired yet still works.
            if current.expires_at is not None and current.expires_at > time.time() + 5:
                logger.warning(
                    "Token refresh for %s %s failed for now; using the current token until it expires",
                    kind.name,
                    current.workspace_key,
                )
                return current
            raise

    def refresh_bot(self, key: str, *, rejected_token: str | None = None) -> BotTokens | None:
        """Single-flight refresh of a workspace's bot token.

        With `rejected_token` (Slack said `token_expired` for it), refresh even if the stored
        expiry says the token is fine — unless the stored token already differs from it, which
        means someone else refreshed meanwhile.
        """
        c = tables.bots.c
        where = sa.and_(c.client_id == self.client_id, c.workspace_key == key)
        row = self._refresh(BOT, where, rejected_token)
        return BotTokens.from_row(row) if row is not None else None

    def refresh_user(self, key: str, user_id: str, *, rejected_token: str | None = None) -> UserTokens | None:
        c = tables.installations.c
        where = sa.and_(c.client_id == self.client_id, c.workspace_key == key, c.user_id == user_id)
        row = self._refresh(USER, where, rejected_token)
        return UserTokens.from_row(row) if row is not None else None

    def _refresh(self, kind: _Kind, where: sa.ColumnElement[bool], rejected_token: str | None) -> Mapping | None:
        with metrics.token_refresh(kind.name) as attempt:
            return self._refresh_counted(kind, where, rejected_token, attempt)

    def _refresh_counted(self, kind: _Kind, where: sa.ColumnElement[bool], rejected_token: str | None,
                         attempt: metrics.RefreshAttempt) -> Mapping | None:
        needs_reinstall: InstallationNeedsReinstall | None = None
        waiting_since = time.perf_counter()  # SQLite waits at BEGIN IMMEDIATE, the others at the SELECT
        try:
            with write_transaction(self.engine) as conn:
                self._set_lock_timeout(conn)
                row = conn.execute(lock_rows_to_update_values(self.engine, sa.select(kind.table).where(where))).first()
                attempt.lock_acquired(time.perf_counter() - waiting_since)
                if row is None:
                    return None
                row = dict(row._mapping)
                self._raise_if_needs_reinstall(row["status"], row["enterprise_id"], row["team_id"])
                refresh_token = row[f"{kind.prefix}_refresh_token"]
                current_token = row[f"{kind.prefix}_token"]
                expires_at = from_db_time(row[f"{kind.prefix}_token_expires_at"])
                if refresh_token is None:
                    return row
                if rejected_token is not None:
                    if current_token != rejected_token:
                        attempt.outcome = "done_elsewhere"
                        return row  # already replaced by another caller
                elif not self.is_due(expires_at):
                    attempt.outcome = "done_elsewhere"
                    return row  # another caller refreshed while we waited for the lock

                try:
                    response = self._exchange(refresh_token)
                except _PermanentRefreshFailure as failure:
                    self._mark_needs_reinstall(conn, kind, where, failure.error)
                    needs_reinstall = InstallationNeedsReinstall(row["enterprise_id"], row["team_id"], failure.error)
                else:
                    values = {
                        kind.token.name: response["access_token"],
                        kind.refresh_token.name: response["refresh_token"],
                        kind.expires_at.name: to_db_time(time.time() + int(response["expires_in"])),
                        "updated_at": utc_now(),
                    }
                    conn.execute(kind.table.update().where(where).values(**values))
                    if kind is BOT:
                        # Keep the bot token copies on the workspace's installation rows current.
                        ic = tables.installations.c
                        conn.execute(
                            tables.installations.update()
                            .where(ic.client_id == self.client_id, ic.workspace_key == row["workspace_key"])
                            .values({k: v for k, v in values.items() if k != "updated_at"})
                        )
                    row.update(values)
                    attempt.outcome = "refreshed"
                    logger.info(
                        "Rotated %s token for enterprise_id=%r team_id=%r",
                        kind.name,
                        row["enterprise_id"],
                        row["team_id"],
                    )
        except sa.exc.OperationalError as error:
            # Lock wait timed out or the database is unreachable: nothing was written.
            raise TokensTemporarilyUnavailable(f"database unavailable during token refresh: {type(error).__name__}")
        if needs_reinstall is not None:
            self._log_needs_reinstall_once(needs_reinstall)
            raise needs_reinstall
        if self.on_rotated is not None:
            self.on_rotated(row["workspace_key"])
        return row

    def mark_rejected(self, key: str, user_id: str | None, token: str, error: str) -> bool:
        """Slack refused `token` for good (`token_revoked`, `account_inactive`, `invalid_auth`): the
        row still holding exactly that token is marked needs_reinstall, so no process serves it
        again (authorize, the installed-only client and the write gate all read the status).
        False when the row is gone or holds another token by now (rotated, reinstalled)."""
        kind = BOT if user_id is None else USER
        c = kind.table.c
        where = sa.and_(c.client_id == self.client_id, c.workspace_key == key)
        if user_id is not None:
            where = sa.and_(where, c.user_id == user_id)
        with write_transaction(self.engine) as conn:
            row = conn.execute(lock_rows_to_update_values(self.engine, sa.select(kind.token, c.status).where(where))).first()
            if row is None or row[0] != token or row[1] != STATUS_OK:
                return False
            conn.execute(kind.table.update().where(where).values(
                status=STATUS_NEEDS_REINSTALL, status_reason=f"{kind.name} token: Slack answered {error}"[:200],
                updated_at=utc_now()))
        logger.warning("Slack answered %s for the %s token of %s: marked needs_reinstall until the app is "
                       "installed again", error, kind.name, key)
        if self.on_rotated is not None:
            self.on_rotated(key)
        return True

    def _set_lock_timeout(self, conn: Connection) -> None:
        # Bounded waiting: a caller queued behind a slow refresh gives up and lets Slack retry.
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(self.lock_timeout_seconds * 1000)}ms'")
        elif dialect == "mysql":
            conn.exec_driver_sql(f"SET SESSION innodb_lock_wait_timeout = {int(self.lock_timeout_seconds)}")

    def _exchange(self, refresh_token: str) -> Mapping[str, Any]:
        """oauth.v2.access with grant_type=refresh_token; transient failures retried with backoff."""
        last_error = "unknown"
        for attempt in range(self.transient_attempts):
            if attempt:
                time.sleep(0.2 * (2 ** (attempt - 1)))
            try:
                response = self.client.oauth_v2_access(
                    client_id=self.client_id,
                    client_secret=self._client_secret,
                    grant_type="refresh_token",
                    refresh_token=refresh_token,
                )
                return response.data  # type: ignore[return-value]
            except SlackApiError as error:
                last_error = str(error.response.get("error") or error.response.status_code)
                if last_error in PERMANENT_REFRESH_ERRORS:
                    raise _PermanentRefreshFailure(last_error)
            except (SlackClientError, OSError) as error:
                last_error = type(error).__name__
        raise TokensTemporarilyUnavailable(f"token refresh failed after {self.transient_attempts} attempts: {last_error}")

    def _mark_needs_reinstall(self, conn: Connection, kind: _Kind, where: sa.ColumnElement[bool], error: str) -> None:
        conn.execute(
            kind.table.update()
            .where(where)
            .values(status=STATUS_NEEDS_REINSTALL, status_reason=f"{kind.name} refresh: {error}", updated_at=utc_now())
        )

    def _raise_if_needs_reinstall(self, status: str, enterprise_id: str | None, team_id: str | None) -> None:
        if status == STATUS_NEEDS_REINSTALL:
            raise InstallationNeedsReinstall(enterprise_id, team_id, "marked earlier")

    def _log_needs_reinstall_once(self, error: InstallationNeedsReinstall) -> None:
        key = workspace_key(error.enterprise_id, error.team_id)
        with self._reinstall_logged_lock:
            if key in self._reinstall_logged:
                return
            self._reinstall_logged.add(key)
        logger.error(
            "Slack rejected the refresh token of enterprise_id=%r team_id=%r (%r): the installation is marked "
            "needs_reinstall and its events are ignored until the workspace installs the app again",
            error.enterprise_id,
            error.team_id,
            error.reason,
        )

    # ------------------------------------------------------------------ outside requests

    def client_for(
        self, enterprise_id: str | None, team_id: str | None, user_id: str | None = None, *, is_enterprise_install: bool = False
    ) -> WebClient:
        """A ready WebClient with fresh tokens, for background jobs (same single-flight path)."""
        key = workspace_key(enterprise_id, None if is_enterprise_install else team_id)
        if user_id is not None:
            user = self.fresh_user(key, user_id)
            if user is None or user.user_token is None:
                raise LookupError(f"no usable user token for user {user_id} in {key}")
            token = user.user_token
        else:
            bot = self.fresh_bot(key)
            if bot is None or bot.bot_token is None:
                raise LookupError(f"no installation for {key}")
            token = bot.bot_token
        client = WebClient(token=token, base_url=self.client.base_url, timeout=self.client.timeout,
                           team_id=team_id, retry_handlers=list(self.client.retry_handlers or []))
        if self.installed is None:
            return client
        from bolt_app.tokens.installed import InstalledOnlyClient

        return InstalledOnlyClient.like(client, installed=self.installed, owners={token: (key, user_id)})

    def refresh_expiring(
        self, within_seconds: int, progress: Callable[[str, str], None] | None = None
    ) -> RefreshSummary:
        """Rotate every token that expires within the window (cron: `main.py tokens refresh`)."""
        summary = RefreshSummary()
        deadline = to_db_time(time.time() + within_seconds)
        saved_window = self.refresh_before_seconds
        self.refresh_before_seconds = within_seconds
        try:
            for kind in (BOT, USER):
                c = kind.table.c
                with self.engine.connect() as conn:
                    rows = conn.execute(
                        sa.select(c.workspace_key, *([c.user_id] if kind is USER else [])).where(
                            c.client_id == self.client_id,
                            c.status == STATUS_OK,
                            kind.refresh_token.is_not(None),
                            kind.expires_at < deadline,
                        )
                    ).all()
                for row in rows:
                    label = f"{kind.name} {row.workspace_key}" + (f" {row.user_id}" if kind is USER else "")
                    try:
                        if kind is BOT:
                            self.refresh_bot(row.workspace_key)
                        else:
                            self.refresh_user(row.workspace_key, row.user_id)
                        summary.refreshed += 1
                        outcome = "refreshed"
                    except InstallationNeedsReinstall:
                        summary.needs_reinstall += 1
                        outcome = "needs reinstall"
                    except TokenError as error:
                        summary.failed += 1
                        outcome = f"failed ({error})"
                    if progress is not None:
                        progress(label, outcome)
        finally:
            self.refresh_before_seconds = saved_window
        return summary


class _PermanentRefreshFailure(Exception):
    def __init__(self, error: str):
        self.error = error
        super().__init__(error)


__all__ = [
    "BotTokens",
    "InstallationNeedsReinstall",
    "RefreshSummary",
    "TokenError",
    "TokenService",
    "TokensTemporarilyUnavailable",
    "UserTokens",
    "Optional",
]
