"""Duplicate deliveries do their work once.

Slack re-sends an event when it did not get a 2xx in time (`X-Slack-Retry-Num`), and a button
click can reach the app twice (double delivery, a client retry). Each piece of work that must
happen once names its delivery (event id; user + action id + action_ts; view id; trigger id)
and claims it by inserting a row with a unique key into `processed_deliveries`:

- work that writes to the database claims in the same transaction as its writes, so the claim
  and the work commit or roll back together (a failed attempt can be retried by Slack);
- work that only calls Slack (e.g. a reply to a mention) claims in its own transaction first
  (`begin`). When a task queue runs it (`retried`: a job may run again after its worker died),
  the claim is a lease: the row says until when this attempt may be doing the work
  (`claimed_until`) and names it (`claim_token`); once the work is done the lease becomes a
  final claim (`finish`), and if it fails it is given up (`abandon`) so a retry can do it.
  Another attempt skips only finished work, takes over a lease that ran out, and meets a live
  lease with `ClaimHeld`, so the job comes back once the lease is over. Without a queue nobody
  runs the work again, and the claim is final at once (one write, as before leases).

With an `InstallationGate` (multi-workspace apps), a claim is stored only while the workspace is
installed: the claim's transaction share-locks the installation row first (tokens/installed.py),
so a claim never outlives an uninstall that committed before or during it.

The insert is an "insert or ignore" on every backend: a duplicate is seen as "0 rows inserted"
without an error, so it never aborts the surrounding transaction (PostgreSQL would).
Rows are swept after a day; Slack retries within minutes.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping, Optional, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from bolt_app.database import write_transaction
from bolt_app.shared import SharedService
from bolt_app.features.workspace import WorkspaceRef
from bolt_app.storage.tables import metadata, utc_now, workspace_key
from bolt_app.tokens.installed import InstallationGate, WorkspaceNotInstalled

logger = logging.getLogger(__name__)

processed_deliveries = sa.Table(
    "processed_deliveries",
    metadata,
    sa.Column("workspace_key", sa.String(80), nullable=False),
    # sha256 of the delivery key: fixed width whatever the ids look like.
    sa.Column("delivery_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
    # A lease (see `Deliveries.begin`): until when the attempt named by claim_token may be doing
    # the work. Both NULL: a final claim (the work is done, or committed with the claim).
    sa.Column("claimed_until", sa.DateTime, nullable=True),
    sa.Column("claim_token", sa.String(32), nullable=True),
    sa.PrimaryKeyConstraint("workspace_key", "delivery_id"),
    sa.Index(None, "received_at"),
)

RETENTION = timedelta(days=1)
SWEEP_EVERY = 200  # sweep old rows on about one claim in this many
# How long an attempt that began work which only calls Slack may take before another attempt may
# take it over: longer than a Web API call with the client's own retries (10 s timeout, a few
# quick retries), short enough that a job whose worker was killed is redone within a minute.
LEASE = timedelta(seconds=30)


class ClaimHeld(Exception):
    """Another attempt holds a live lease on this delivery's work: try again in `retry_after` s."""

    def __init__(self, retry_after: float):
        super().__init__(f"another attempt holds this delivery for {retry_after:.0f} s more")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Claim:
    """A lease on one delivery's work (from `Deliveries.begin`): `finish` or `abandon` it.
    `delivery_id` None: nothing was recorded (no key, or the database was unavailable)."""

    workspace_key: str
    delivery_id: Optional[str]
    token: Optional[str]


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
        return insert.values(values).on_conflict_do_nothing().returning(*table.primary_key.columns)
    # MySQL / MariaDB: affected rows is 0 for an ignored duplicate.
    return table.insert().values(values).prefix_with("IGNORE")


def insert_ignore(conn: Connection, table: sa.Table, values: Mapping[str, Any]) -> bool:
    """Insert one row unless its key exists; True when inserted. Never raises on a duplicate."""
    return bool(insert_ignore_many(conn, table, [values]))


def insert_ignore_many(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> set[tuple]:
    """Insert each row unless its key exists (or an earlier row in `rows` has it); the primary
    keys of the rows inserted. One multi-row statement where RETURNING allows it."""
    dialect = conn.dialect.name
    statement = _insert_ignore_statement(dialect, table)
    if dialect in ("postgresql", "sqlite"):
        return {tuple(row) for row in conn.execute(statement, [dict(r) for r in rows])}
    key_columns = [column.name for column in table.primary_key.columns]
    inserted = set()
    for row in rows:
        if conn.execute(statement, dict(row)).rowcount == 1:
            inserted.add(tuple(row[name] for name in key_columns))
    return inserted


class _PendingClaim:
    __slots__ = ("row", "key", "ready", "leads", "claimed", "error")

    def __init__(self, row: dict[str, Any]):
        self.row = row
        self.key = (row["workspace_key"], row["delivery_id"])
        self.ready = threading.Event()
        self.leads = False  # woken to commit the next batch, not with a result
        self.claimed: Optional[bool] = None
        self.error: Optional[BaseException] = None


class ClaimBatcher:
    """Group commit for claims made on their own (not inside a caller's transaction).

    A claim is a tiny transaction, and its cost is the transaction: a pooled connection checked
    out (and pinged), BEGIN, COMMIT (a WAL flush on PostgreSQL; the write lock on SQLite). Threads
    that claim while another thread's transaction is running wait for it to finish, and then one
    of them commits all their claims in one transaction. Alone, a claim costs what it did; under
    load, each transaction carries as many claims as arrived while the previous one ran.
    """

    def __init__(self, engine: Engine, table: sa.Table, *, max_batch: int = 64,
                 gate: Optional[InstallationGate] = None):
        self.engine = engine
        self.table = table
        self.max_batch = max_batch
        # Rows are inserted only for workspaces the gate finds installed (in the same transaction).
        self.gate = gate
        self._lock = threading.Lock()
        self._pending: list[_PendingClaim] = []
        self._committing = False

    def claim(self, row: dict[str, Any]) -> bool:
        """True when this row was inserted, False when its key exists; raises what the
        transaction raised (every claim in a failed batch gets the error)."""
        mine = _PendingClaim(row)
        with self._lock:
            self._pending.append(mine)
            lead = not self._committing
            self._committing = True
        if not lead:
            mine.ready.wait()
            lead = mine.leads
        if lead:
            self._commit_next_batch()  # our claim is in that batch: it was first in line
        if mine.error is not None:
            raise mine.error
        assert mine.claimed is not None
        return mine.claimed

    def _commit_next_batch(self) -> None:
        with self._lock:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        first: dict[tuple, _PendingClaim] = {}
        for claim in batch:
            first.setdefault(claim.key, claim)
        try:
            with write_transaction(self.engine) as conn:
                keys = {claim.row["workspace_key"] for claim in first.values()}
                admitted = keys if self.gate is None else self.gate.installed(conn, keys)
                rows = [claim.row for claim in first.values() if claim.row["workspace_key"] in admitted]
                inserted = insert_ignore_many(conn, self.table, rows) if rows else set()
            for claim in batch:
                if claim.row["workspace_key"] not in admitted:
                    claim.error = WorkspaceNotInstalled(claim.row["workspace_key"], "uninstalled; nothing claimed")
                    continue
                # A key twice in one batch: the first is the claim, the other its duplicate.
                claim.claimed = claim is first[claim.key] and claim.key in inserted
        except BaseException as error:  # every waiter must wake, whatever went wrong
            for claim in batch:
                claim.error = error
        finally:
            with self._lock:
                successor = self._pending[0] if self._pending else None
                self._committing = successor is not None
            for claim in batch:
                claim.ready.set()
            if successor is not None:
                # Hand over: the oldest waiter commits the next batch, with its own claim in it.
                successor.leads = True
                successor.ready.set()


def _row(ws: WorkspaceRef, key: str) -> dict[str, Any]:
    return delivery_row(ws.key, key)


def delivery_row(workspace_key: str, key: str) -> dict[str, Any]:
    """The processed_deliveries row that records `key` (its kind is the part before the first ':')."""
    return {
        "workspace_key": workspace_key,
        "delivery_id": hashlib.sha256(key.encode("utf-8")).hexdigest(),
        "kind": key.split(":", 1)[0][:32],
        "received_at": utc_now(),
        "claimed_until": None,
        "claim_token": None,
    }


class Deliveries(SharedService):
    # True when lazy work runs from a queue that runs a job again when its worker died and retries
    # failed ones (set by bolt_app/background.py): `begin` then leases, raises ClaimHeld on a live
    # lease and lets database errors through, so the job comes back later. Otherwise nobody would
    # run it again: `begin` claims for good, and without the database the work is done
    # unrecorded rather than not at all.
    retried: bool = False

    def __init__(self, engine: Engine, *, retention: timedelta = RETENTION, sweep_every: int = SWEEP_EVERY,
                 lease: timedelta = LEASE, gate: Optional[InstallationGate] = None):
        self.engine = engine
        self.retention = retention
        self.sweep_every = sweep_every
        self.lease = lease
        # Shared with the features' own write transactions (PollService), which hold it first.
        self.gate = gate
        self._batcher = ClaimBatcher(engine, processed_deliveries, gate=gate)

    def claim(self, ws: WorkspaceRef, key: Optional[str], *, conn: Optional[Connection] = None) -> bool:
        """True the first time `key` is claimed in this workspace; False for a duplicate.

        With `conn`, the claim joins the caller's transaction, which must already hold the
        workspace through `gate.require`. On its own, the claim raises `WorkspaceNotInstalled`
        when the gate finds the workspace uninstalled. A None key (nothing to deduplicate by)
        always claims.
        """
        if key is None:
            return True
        if conn is not None:
            return insert_ignore(conn, processed_deliveries, _row(ws, key))
        return self._claim(_row(ws, key))

    def _claim(self, row: dict[str, Any]) -> bool:
        """Insert `row` in its own (batched) transaction; True when inserted."""
        claimed = self._batcher.claim(row)
        if claimed and secrets.randbelow(self.sweep_every) == 0:
            self.sweep()
        return claimed

    def begin(self, ws: WorkspaceRef, key: Optional[str], *, must_record: bool = False) -> Optional[Claim]:
        """Claim `key`'s work (work that only calls Slack, e.g. a reply) for this attempt; None:
        skip it. Call `finish` once it is done, `abandon` if it failed.

        When `retried` (a queue runs this and may run it again): the claim is a lease. None when
        the work was finished; a lease that ran out is taken over; ClaimHeld is raised while
        another attempt's lease is live; database errors are raised (the job comes back).
        Otherwise nobody runs it again, so the claim is final at once, as `claim` makes it (no
        second write): None when any attempt claimed it before; without the database the work
        goes ahead unrecorded, unless `must_record`. A None key always gets a (recordless) claim.
        """
        if key is None:
            return Claim(ws.key, None, None)
        try:
            return self._begin(ws, key)
        except (sa.exc.DBAPIError, sa.exc.TimeoutError) as error:
            if self.retried or must_record:
                raise
            logger.warning("Could not record %r (%s); doing it anyway", key, type(error).__name__)
            return Claim(ws.key, None, None)

    def _begin(self, ws: WorkspaceRef, key: str) -> Optional[Claim]:
        now = utc_now()
        if not self.retried:
            row = _row(ws, key)
            return Claim(ws.key, row["delivery_id"], None) if self._claim(row) else None
        token = secrets.token_hex(16)
        row = {**_row(ws, key), "claimed_until": now + self.lease, "claim_token": token}
        claim = Claim(ws.key, row["delivery_id"], token)
        # The common case, a first attempt, is one insert batched with other threads' claims.
        if self._claim(row):
            return claim
        c = processed_deliveries.c
        this = (c.workspace_key == ws.key) & (c.delivery_id == row["delivery_id"])
        with write_transaction(self.engine) as conn:
            if self.gate is not None:
                self.gate.require(conn, ws.key)  # an uninstall in between: nothing comes back
            # One statement: of two attempts taking over the same expired lease, one updates the row.
            taken = conn.execute(
                processed_deliveries.update()
                .where(this, c.claimed_until.is_not(None), c.claimed_until < now)
                .values(claimed_until=row["claimed_until"], claim_token=token)
            ).rowcount
            if taken == 1:
                logger.info("Took over %s: the attempt that began it did not finish within its lease", row["kind"])
                return claim
            found = conn.execute(sa.select(c.claimed_until).where(this)).first()
            if found is None and insert_ignore(conn, processed_deliveries, row):
                return claim  # abandoned in between
        if found is not None and found.claimed_until is None:
            return None  # done
        until = found.claimed_until if found is not None else row["claimed_until"]
        raise ClaimHeld(max((until - now).total_seconds(), 1.0))

    def finish(self, claim: Claim) -> None:
        """The work is done: the lease becomes a final claim. Never raises: a failure is logged (a
        re-run of this job, should one come, would then redo the work once the lease is over)."""
        if claim.token is None:
            return  # final already, or unrecorded
        c = processed_deliveries.c
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(
                    processed_deliveries.update()
                    .where(c.workspace_key == claim.workspace_key, c.delivery_id == claim.delivery_id,
                           c.claim_token == claim.token)
                    .values(claimed_until=None, claim_token=None)
                )
        except (sa.exc.DBAPIError, sa.exc.TimeoutError) as error:
            logger.warning("Could not record finished work (%s)", type(error).__name__)

    def abandon(self, claim: Claim) -> None:
        """The work failed: give the claim up so a retry (the queue's, or the thread runner's run
        after a refreshed token) can do it at once. Never raises (a lease runs out by itself)."""
        if claim.delivery_id is None:
            return
        c = processed_deliveries.c
        mine = c.claim_token == claim.token if claim.token is not None else c.claimed_until.is_(None)
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(
                    processed_deliveries.delete().where(
                        c.workspace_key == claim.workspace_key, c.delivery_id == claim.delivery_id, mine
                    )
                )
        except (sa.exc.DBAPIError, sa.exc.TimeoutError) as error:
            logger.warning("Could not give up a lease (%s); it runs out by itself", type(error).__name__)

    def is_done(self, ws: WorkspaceRef, key: Optional[str]) -> bool:
        """True when `key`'s work was finished (or claimed for good). Raises without the database."""
        if key is None:
            return False
        c = processed_deliveries.c
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(c.claimed_until).where(c.workspace_key == ws.key, c.delivery_id == _row(ws, key)["delivery_id"])
            ).first()
        return found is not None and found.claimed_until is None

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
