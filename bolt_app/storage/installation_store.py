"""slack_sdk's SQLAlchemy installation store, extended for production.

What changes against the stock store (`SQLAlchemyInstallationStore`):
- one bots row per workspace and one installations row per workspace + user, updated in place
  (the stock store appends a row per save and picks "the latest" by time, which rotation under
  concurrency turns into lost tokens);
- writes run in one locking transaction and are retried once on a unique-key race, so two
  concurrent saves of the same workspace never leave two rows or half a row;
- a save never erases a token it was not given (a bot-token refresh keeps the user token);
- lookups use the `workspace_key` unique index instead of NULL-able id pairs;
- timestamps are read as UTC whatever the server's local time zone.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, Optional, Sequence

import sqlalchemy as sa
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from sqlalchemy.engine import Connection, Engine

from bolt_app.database import lock_rows, write_transaction
from bolt_app.storage import tables
from bolt_app.storage.tables import STATUS_OK, from_db_time, to_db_time, utc_now, workspace_key

BOT_COLUMNS = (
    "bot_token",
    "bot_id",
    "bot_user_id",
    "bot_scopes",
    "bot_refresh_token",
    "bot_token_expires_at",
)

# Called with (enterprise_id, team_id) after a workspace's Slack rows are deleted, in the same
# transaction, so features delete their own data with it (uninstall removes everything).
WorkspaceDeletionHook = Callable[[Connection, Optional[str], Optional[str]], None]


def _scopes_text(scopes: Any) -> str | None:
    if scopes is None:
        return None
    if isinstance(scopes, str):
        return scopes
    return ",".join(scopes)


class InstallationStore(SQLAlchemyInstallationStore):
    """The installation store Bolt's OAuth flow saves to and the token service reads from."""

    def __init__(self, client_id: str, engine: Engine, logger: logging.Logger | None = None):
        super().__init__(client_id=client_id, engine=engine, logger=logger or logging.getLogger(__name__))
        # The stock __init__ builds its own tables; these are the extended ones, same names.
        self.metadata = tables.metadata
        self.installations = tables.installations
        self.bots = tables.bots
        self.deletion_hooks: list[WorkspaceDeletionHook] = []
        # Called with the workspace key after any write, e.g. to drop cached authorize results.
        self.change_listeners: list[Callable[[str], None]] = []

    def _changed(self, key: str) -> None:
        for listener in self.change_listeners:
            listener(key)

    def create_tables(self) -> None:  # pragma: no cover - migrations own the schema
        raise NotImplementedError("The schema is managed by Alembic: run `python main.py db upgrade`.")

    # ------------------------------------------------------------------ writes

    def save(self, installation: Installation) -> None:
        self._with_retry_on_conflict(lambda conn: self._save_installation(conn, installation))
        self._changed(self._key_of(installation))

    def save_bot(self, bot: Bot) -> None:
        self._with_retry_on_conflict(lambda conn: self._save_bot(conn, bot))
        self._changed(self._key_of(bot))

    @staticmethod
    def _key_of(item: Bot | Installation) -> str:
        return workspace_key(item.enterprise_id, None if item.is_enterprise_install else item.team_id)

    def _with_retry_on_conflict(self, work: Callable[[Connection], None]) -> None:
        # Two saves of a new workspace at once: both see no row, one INSERT loses on the unique
        # key. The retry then finds the winner's row and updates it.
        for attempt in range(2):
            try:
                with write_transaction(self.engine) as conn:
                    work(conn)
                return
            except sa.exc.IntegrityError:
                if attempt == 1:
                    raise

    def _save_installation(self, conn: Connection, installation: Installation) -> None:
        i = installation
        key = self._key_of(i)
        now = utc_now()
        values: dict[str, Any] = {
            "client_id": self.client_id,
            "app_id": i.app_id,
            "workspace_key": key,
            "enterprise_id": i.enterprise_id,
            "enterprise_name": i.enterprise_name,
            "enterprise_url": i.enterprise_url,
            "team_id": i.team_id,
            "team_name": i.team_name,
            "user_id": i.user_id,
            "is_enterprise_install": bool(i.is_enterprise_install),
            "token_type": i.token_type,
            "installed_at": to_db_time(i.installed_at),
            "updated_at": now,
            "status": STATUS_OK,
            "status_reason": None,
            "user_token": i.user_token,
            "user_scopes": _scopes_text(i.user_scopes),
            "user_refresh_token": i.user_refresh_token,
            "user_token_expires_at": to_db_time(i.user_token_expires_at),
            "incoming_webhook_url": i.incoming_webhook_url,
            "incoming_webhook_channel": i.incoming_webhook_channel,
            "incoming_webhook_channel_id": i.incoming_webhook_channel_id,
            "incoming_webhook_configuration_url": i.incoming_webhook_configuration_url,
        }
        if i.bot_token is not None:
            values.update(self._bot_values(i))
        c = self.installations.c
        existing = conn.execute(
            lock_rows(
                self.engine,
                sa.select(c.id, c.user_token).where(
                    c.client_id == self.client_id, c.workspace_key == key, c.user_id == i.user_id
                ),
            )
        ).first()
        if existing is None:
            conn.execute(self.installations.insert().values(**values))
        else:
            if i.user_token is None:
                # A bot-only save (e.g. a bot token refresh through the stock rotator) must not
                # erase the user token this row already holds.
                for column in ("user_token", "user_scopes", "user_refresh_token", "user_token_expires_at"):
                    values.pop(column)
            conn.execute(self.installations.update().where(c.id == existing.id).values(**values))
        if i.bot_token is not None:
            self._save_bot(conn, i.to_bot())

    @staticmethod
    def _bot_values(bot: Bot | Installation) -> dict[str, Any]:
        return {
            "bot_token": bot.bot_token,
            "bot_id": bot.bot_id,
            "bot_user_id": bot.bot_user_id,
            "bot_scopes": _scopes_text(bot.bot_scopes),
            "bot_refresh_token": bot.bot_refresh_token,
            "bot_token_expires_at": to_db_time(bot.bot_token_expires_at),
        }

    def _save_bot(self, conn: Connection, bot: Bot) -> None:
        key = self._key_of(bot)
        now = utc_now()
        values = {
            "client_id": self.client_id,
            "app_id": bot.app_id,
            "workspace_key": key,
            "enterprise_id": bot.enterprise_id,
            "enterprise_name": bot.enterprise_name,
            "team_id": bot.team_id,
            "team_name": bot.team_name,
            "is_enterprise_install": bool(bot.is_enterprise_install),
            "installed_at": to_db_time(bot.installed_at),
            "updated_at": now,
            "status": STATUS_OK,
            "status_reason": None,
            **self._bot_values(bot),
        }
        c = self.bots.c
        existing = conn.execute(
            lock_rows(self.engine, sa.select(c.id).where(c.client_id == self.client_id, c.workspace_key == key))
        ).first()
        if existing is None:
            conn.execute(self.bots.insert().values(**values))
        else:
            conn.execute(self.bots.update().where(c.id == existing.id).values(**values))
        # Every installation row of the workspace carries the current bot token (stock readers
        # of slack_installations expect it there).
        ic = self.installations.c
        conn.execute(
            self.installations.update()
            .where(ic.client_id == self.client_id, ic.workspace_key == key)
            .values(**self._bot_values(bot))
        )

    # ------------------------------------------------------------------ reads

    def find_bot(
        self,
        *,
        enterprise_id: Optional[str],
        team_id: Optional[str],
        is_enterprise_install: Optional[bool] = False,
    ) -> Optional[Bot]:
        key = workspace_key(enterprise_id, None if is_enterprise_install else team_id)
        c = self.bots.c
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(self.bots).where(
                    c.client_id == self.client_id, c.workspace_key == key, c.bot_token.is_not(None)
                )
            ).first()
        return self.bot_from_row(row._mapping) if row is not None else None

    def find_installation(
        self,
        *,
        enterprise_id: Optional[str],
        team_id: Optional[str],
        user_id: Optional[str] = None,
        is_enterprise_install: Optional[bool] = False,
    ) -> Optional[Installation]:
        key = workspace_key(enterprise_id, None if is_enterprise_install else team_id)
        c = self.installations.c
        query = sa.select(self.installations).where(c.client_id == self.client_id, c.workspace_key == key)
        if user_id is not None:
            query = query.where(c.user_id == user_id)
        query = query.order_by(c.installed_at.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return self.installation_from_row(row._mapping) if row is not None else None

    @staticmethod
    def _bot_fields(row: Mapping[str, Any]) -> dict[str, Any]:
        """The columns bots and installation rows share, converted for slack_sdk's models."""
        return {
            "app_id": row["app_id"],
            "enterprise_id": row["enterprise_id"],
            "enterprise_name": row["enterprise_name"],
            "team_id": row["team_id"],
            "team_name": row["team_name"],
            "bot_token": row["bot_token"],
            "bot_id": row["bot_id"],
            "bot_user_id": row["bot_user_id"],
            "bot_scopes": row["bot_scopes"],
            "bot_refresh_token": row["bot_refresh_token"],
            "bot_token_expires_at": from_db_time(row["bot_token_expires_at"]),
            "is_enterprise_install": row["is_enterprise_install"],
            "installed_at": float(from_db_time(row["installed_at"]) or 0),  # slack_sdk wants a float here
        }

    @classmethod
    def bot_from_row(cls, row: Mapping[str, Any]) -> Bot:
        return Bot(**cls._bot_fields(row))

    @classmethod
    def installation_from_row(cls, row: Mapping[str, Any]) -> Installation:
        return Installation(
            **cls._bot_fields(row),
            enterprise_url=row["enterprise_url"],
            user_id=row["user_id"],
            user_token=row["user_token"],
            user_scopes=row["user_scopes"],
            user_refresh_token=row["user_refresh_token"],
            user_token_expires_at=from_db_time(row["user_token_expires_at"]),
            incoming_webhook_url=row["incoming_webhook_url"],
            incoming_webhook_channel=row["incoming_webhook_channel"],
            incoming_webhook_channel_id=row["incoming_webhook_channel_id"],
            incoming_webhook_configuration_url=row["incoming_webhook_configuration_url"],
            token_type=row["token_type"],
        )

    # ------------------------------------------------------------------ deletes

    def delete_bot(self, *, enterprise_id: Optional[str], team_id: Optional[str]) -> None:
        key = workspace_key(enterprise_id, team_id)
        with write_transaction(self.engine) as conn:
            self._delete_bot(conn, key)
        self._changed(key)

    def _delete_bot(self, conn: Connection, key: str) -> None:
        c = self.bots.c
        conn.execute(self.bots.delete().where(c.client_id == self.client_id, c.workspace_key == key))
        # The bot token copies on installation rows go with the bot.
        ic = self.installations.c
        conn.execute(
            self.installations.update()
            .where(ic.client_id == self.client_id, ic.workspace_key == key)
            .values(**{column: None for column in BOT_COLUMNS})
        )

    def delete_installation(
        self,
        *,
        enterprise_id: Optional[str],
        team_id: Optional[str],
        user_id: Optional[str] = None,
    ) -> None:
        key = workspace_key(enterprise_id, team_id)
        c = self.installations.c
        query = self.installations.delete().where(c.client_id == self.client_id, c.workspace_key == key)
        if user_id is not None:
            query = query.where(c.user_id == user_id)
        with write_transaction(self.engine) as conn:
            conn.execute(query)
        self._changed(key)

    def delete_all(self, *, enterprise_id: Optional[str], team_id: Optional[str]) -> None:
        """Uninstall: the workspace's bot, installations and every feature's data, atomically."""
        key = workspace_key(enterprise_id, team_id)
        with write_transaction(self.engine) as conn:
            self._delete_all(conn, key, enterprise_id, team_id)
        self._changed(key)

    def _delete_all(self, conn: Connection, key: str, enterprise_id: Optional[str], team_id: Optional[str]) -> None:
        conn.execute(self.bots.delete().where(self.bots.c.client_id == self.client_id, self.bots.c.workspace_key == key))
        ic = self.installations.c
        conn.execute(self.installations.delete().where(ic.client_id == self.client_id, ic.workspace_key == key))
        for hook in self.deletion_hooks:
            hook(conn, enterprise_id, team_id)

    def revoke(
        self,
        *,
        enterprise_id: Optional[str],
        team_id: Optional[str],
        uninstall: bool = False,
        user_ids: Sequence[str] = (),
        bot: bool = False,
        sent_at: Optional[int] = None,
        claim: Optional[Callable[[Connection], bool]] = None,
    ) -> bool:
        """Apply an app_uninstalled (`uninstall`) or tokens_revoked (`user_ids`, `bot`) event in one
        transaction; False when it changed nothing because it was stale or seen before.

        `claim` (in this transaction, first) is False for a delivery already applied: nothing is
        done. `sent_at` is when Slack sent the event (epoch seconds): what was installed in a
        later second is a reinstall the event knows nothing about, and it stays — an uninstall
        then deletes nothing at all, a revocation keeps the newer user rows and bot token."""
        key = workspace_key(enterprise_id, team_id)
        newer = to_db_time(sent_at + 1) if sent_at is not None else None
        with write_transaction(self.engine) as conn:
            if claim is not None and not claim(conn):
                return False
            if uninstall:
                if newer is not None and self._installed_since(conn, key, newer):
                    return False
                self._delete_all(conn, key, enterprise_id, team_id)
            else:
                changed = False
                if user_ids:
                    c = self.installations.c
                    query = self.installations.delete().where(
                        c.client_id == self.client_id, c.workspace_key == key, c.user_id.in_(list(user_ids))
                    )
                    if newer is not None:
                        query = query.where(c.installed_at < newer)
                    changed = conn.execute(query).rowcount > 0
                if bot and not (newer is not None and self._installed_since(conn, key, newer, bots_only=True)):
                    self._delete_bot(conn, key)
                    changed = True
                if not changed:
                    return False
        self._changed(key)
        return True

    def _installed_since(self, conn: Connection, key: str, since: Any, *, bots_only: bool = False) -> bool:
        """Whether the workspace has a bot (or, unless `bots_only`, any installation) installed at
        or after `since` (rows found stay locked until the transaction ends)."""
        tables_ = (self.bots,) if bots_only else (self.bots, self.installations)
        for table in tables_:
            c = table.c
            found = conn.execute(
                lock_rows(
                    self.engine,
                    sa.select(c.id).where(c.client_id == self.client_id, c.workspace_key == key,
                                          c.installed_at >= since),
                )
            ).first()
            if found is not None:
                return True
        return False
