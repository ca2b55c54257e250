"""Duplicate deliveries do their work once.

Slack re-sends an event when it did not get a 2xx in time (`X-Slack-Retry-Num`), and a button
click can reach the app twice (double delivery, a client retry). Each piece of work that must
happen once names its delivery (event id; user + action id + action_ts; view id; trigger id)
and claims it by inserting a row with a unique key into `processed_deliveries`:

- work that writes to the database claims in the same transaction as its writes, so the claim
  and the work commit or roll back together (a failed attempt can be retried by Slack);
- work that only calls Slack (e.g. a reply to a mention) claims in its own transaction first
  and releases the claim if the work fails, so the retry can do it.

The insert is an "insert or ignore" on every backend: a duplicate is seen as "0 rows inserted"
without an error, so it never aborts the surrounding transaction (PostgreSQL would).
Rows are swept after a day; Slack retries within minutes.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
from datetime import timedelta
from typing import Any, Mapping, Optional

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from bolt_app.database import write_transaction
from bolt_app.features.workspace import WorkspaceRef
from bolt_app.storage.tables import metadata, utc_now, workspace_key

logger = logging.getLogger(__name__)

processed_deliveries = sa.Table(
    "processed_deliveries",
    metadata,
    sa.Column("workspace_key", sa.String(80), nullable=False),
    # sha256 of the delivery key: fixed width whatever the ids look like.
    sa.Column("delivery_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.PrimaryKeyConstraint("workspace_key", "delivery_id"),
    sa.Index(None, "received_at"),
)

RETENTION = timedelta(days=1)
SWEEP_EVERY = 200  # sweep old rows on about one claim in this many


def event_key(body: Mapping[str, Any]) -> Optional[str]:
    """An Events API delivery: Slack keeps `event_id` across retries."""
    event_id = body.get("event_id")
    return f"event:{event_id}" if event_id else None


def action_key(body: Mapping[str, Any], action: Mapping[str, Any]) -> Optional[str]:
    """A click: the same user, action and `action_ts` is the same click delivered again."""
    user = (body.get("user") or {}).get("id")
    action_ts = action.get("action_ts")
    if not user or not action_ts:
        return None
    return f"action:{user}:{action.get('block_id', '')}:{action.get('action_id')}:{action_ts}"


@functools.lru_cache(maxsize=None)
def _insert_ignore_statement(dialect: str, table: sa.Table) -> sa.Executable:
    """Built once per dialect and table: the statement is the same for every row (values are
    bound parameters), so SQLAlchemy's compiled cache is hit without rebuilding it per call."""
    values = {column.name: sa.bindparam(column.name) for column in table.columns}
    if dialect in ("postgresql", "sqlite"):
        # RETURNING, not rowcount: psycopg reports -1 for this statement.
        insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
        key = list(table.primary_key.columns)[0]
        return insert.values(values).on_conflict_do_nothing().returning(key)
    # MySQL / MariaDB: affected rows is 0 for an ignored duplicate.
    return table.insert().values(values).prefix_with("IGNORE")


def insert_ignore(conn: Connection, table: sa.Table, values: Mapping[str, Any]) -> bool:
    """Insert one row unless its key exists; True when inserted. Never raises on a duplicate."""
    dialect = conn.dialect.name
    result = conn.execute(_insert_ignore_statement(dialect, table), dict(values))
    if dialect in ("postgresql", "sqlite"):
        return result.first() is not None
    return result.rowcount == 1


def _row(ws: WorkspaceRef, key: str) -> dict[str, Any]:
    return {
        "workspace_key": ws.key,
        "delivery_id": hashlib.sha256(key.encode("utf-8")).hexdigest(),
        "kind": key.split(":", 1)[0][:32],
        "received_at": utc_now(),
    }


class Deliveries:
    def __init__(self, engine: Engine, *, retention: timedelta = RETENTION, sweep_every: int = SWEEP_EVERY):
        self.engine = engine
        self.retention = retention
        self.sweep_every = sweep_every

    def claim(self, ws: WorkspaceRef, key: Optional[str], *, conn: Optional[Connection] = None) -> bool:
        """True the first time `key` is claimed in this workspace; False for a duplicate.

        With `conn`, the claim joins the caller's transaction. A None key (nothing to
        deduplicate by) always claims.
        """
        if key is None:
            return True
        if conn is not None:
            return insert_ignore(conn, processed_deliveries, _row(ws, key))
        with write_transaction(self.engine) as own:
            claimed = insert_ignore(own, processed_deliveries, _row(ws, key))
        if claimed and secrets.randbelow(self.sweep_every) == 0:
            self.sweep()
        return claimed

    def release(self, ws: WorkspaceRef, key: Optional[str]) -> None:
        """Forget a claim whose work failed, so a retry of the delivery can do it."""
        if key is None:
            return
        c = processed_deliveries.c
        with write_transaction(self.engine) as conn:
            conn.execute(
                processed_deliveries.delete().where(
                    c.workspace_key == ws.key, c.delivery_id == _row(ws, key)["delivery_id"]
                )
            )

    def sweep(self) -> int:
        try:
            with write_transaction(self.engine) as conn:
                return conn.execute(
                    processed_deliveries.delete().where(processed_deliveries.c.received_at < utc_now() - self.retention)
                ).rowcount
        except sa.exc.DBAPIError as error:  # housekeeping only: never fail a request for it
            logger.warning("Sweeping processed deliveries failed: %s", type(error).__name__)
            return 0

    @staticmethod
    def delete_workspace(conn: Connection, enterprise_id: Optional[str], team_id: Optional[str]) -> None:
        """Installation-store deletion hook: runs in the uninstall transaction."""
        conn.execute(
            processed_deliveries.delete().where(
                processed_deliveries.c.workspace_key == workspace_key(enterprise_id, team_id)
            )
        )
