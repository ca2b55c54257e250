"""encrypt tokens at rest

Revision ID: 0003
Revises: 0002

Encrypts the plaintext token columns (bot/user tokens, refresh tokens, incoming webhook URL) of
existing rows with the first key of SLACK_TOKEN_ENCRYPTION_KEYS (or, for SQLite without keys, the
key file next to the database), exactly as the app resolves its keys. No schema change: the columns
were created wide enough for the Fernet text. Values already encrypted are left alone, so running it
on a partly converted database is safe. An empty database needs no key.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

from bolt_app.storage import crypto

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

logger = logging.getLogger("alembic.runtime.migration")
BATCH = 500


def _keyring(conn: sa.engine.Connection) -> crypto.Keyring:
    # The keyring start-up / the CLI bound to this engine, else the one the environment configures.
    return crypto.bound_keyring(conn) or crypto.keyring_from_environment(
        conn.engine.url.render_as_string(hide_password=False)
    )


def _convert(encrypt: bool) -> None:
    conn = op.get_bind()
    keyring: crypto.Keyring | None = None
    for name, columns in crypto.TOKEN_COLUMNS.items():
        table = crypto.raw_table(name)
        converted = 0
        last_id = 0
        while True:
            rows = conn.execute(
                sa.select(table).where(table.c.id > last_id).order_by(table.c.id).limit(BATCH)
            ).all()
            if not rows:
                break
            for row in rows:
                last_id = row.id
                values = {}
                for column in columns:
                    value = row._mapping[column]
                    if value is None or crypto.looks_encrypted(value) == encrypt:
                        continue  # NULL, or already in the wanted form
                    keyring = keyring or _keyring(conn)
                    values[column] = (
                        keyring.encrypt(value) if encrypt else keyring.decrypt(value, where=f"{name}.{column}")
                    )
                if values:
                    conn.execute(sa.update(table).where(table.c.id == row.id).values(**values))
                    converted += 1
        if converted:
            logger.info("%s the tokens of %d row(s) in %s", "Encrypted" if encrypt else "Decrypted", converted, name)


def upgrade() -> None:
    _convert(encrypt=True)


def downgrade() -> None:
    _convert(encrypt=False)
