"""`python main.py keys …`: generate a token encryption key, re-encrypt every row with the first key.

Rotation without downtime:
1. `python main.py keys generate` → NEW.
2. Deploy with SLACK_TOKEN_ENCRYPTION_KEYS=NEW,OLD everywhere (new writes use NEW; both decrypt).
3. `python main.py keys rotate` re-encrypts what is still under OLD.
4. Deploy with SLACK_TOKEN_ENCRYPTION_KEYS=NEW.

`rotate` is resumable and safe while the app serves: rows are first read without locks, and only a
row that still has a value under an older key is locked (SELECT … FOR UPDATE; BEGIN IMMEDIATE on
SQLite), re-read, re-encrypted and committed on its own, so a token rotated by the app meanwhile
is never overwritten with a stale value. Rows already under the first key are skipped, so an
interrupted run simply continues where it stopped when started again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bolt_app.database import lock_rows_to_update_values, write_transaction
from bolt_app.storage import crypto

Progress = Callable[[str], None]


@dataclass
class RotateSummary:
    checked: int = 0
    reencrypted: int = 0
    already_current: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)


def generate() -> str:
    return crypto.generate_key()


def rotate(
    engine: Engine,
    keyring: crypto.Keyring,
    progress: Optional[Progress] = None,
    *,
    batch_size: int = 200,
    every: int = 100,
    row_hook: Optional[Callable[[str, int], None]] = None,
) -> RotateSummary:
    """Re-encrypt every token value that is not under the keyring's first key.

    `row_hook(table, id)` runs before each row is re-encrypted (tests interrupt a run with it).
    """
    summary = RotateSummary()
    say = progress or (lambda _line: None)
    for name, columns in crypto.TOKEN_COLUMNS.items():
        table = crypto.raw_table(name)
        with engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() or 0
        say(f"{name}: {total} row(s) to check")
        done = reencrypted = 0
        last_id = 0
        while True:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.select(table).where(table.c.id > last_id).order_by(table.c.id).limit(batch_size)
                ).all()
            if not rows:
                break
            for row in rows:
                last_id = row.id
                done += 1
                summary.checked += 1
                if not _stale_columns(keyring, row._mapping, columns):
                    summary.already_current += 1
                else:
                    if row_hook is not None:
                        row_hook(name, row.id)
                    try:
                        if _reencrypt_row(engine, keyring, table, columns, row.id):
                            reencrypted += 1
                            summary.reencrypted += 1
                        else:
                            summary.already_current += 1
                    except crypto.TokenDecryptionError as error:
                        summary.failed += 1
                        summary.failures.append(f"{name} id {row.id}: {error}")
                if done % every == 0:
                    say(f"{name}: {done}/{total} checked, {reencrypted} re-encrypted")
        say(f"{name}: {done}/{total} checked, {reencrypted} re-encrypted")
    return summary


def _stale_columns(keyring: crypto.Keyring, row, columns) -> list[str]:  # type: ignore[no-untyped-def]
    return [c for c in columns if row[c] is not None and not keyring.is_current(row[c])]


def _reencrypt_row(engine: Engine, keyring: crypto.Keyring, table, columns, row_id: int) -> bool:  # type: ignore[no-untyped-def]
    """One row, in its own transaction, under a row lock. False when nothing was left to do."""
    with write_transaction(engine) as conn:
        row = conn.execute(lock_rows_to_update_values(engine, sa.select(table).where(table.c.id == row_id))).first()
        if row is None:
            return False  # deleted meanwhile (uninstall)
        values = {
            column: keyring.reencrypt(row._mapping[column], where=f"{table.name}.{column} (id {row_id})")
            for column in _stale_columns(keyring, row._mapping, columns)
        }
        if not values:
            return False  # the app rewrote it under the first key meanwhile
        conn.execute(sa.update(table).where(table.c.id == row_id).values(**values))
        return True
