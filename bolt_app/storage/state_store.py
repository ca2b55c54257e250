"""slack_sdk's SQLAlchemy OAuth state store, extended so a state is consumed exactly once.

The stock `consume` selects the row and deletes it in two statements: two callbacks with the same
state racing on PostgreSQL or MariaDB can both see the row and both succeed. Here the DELETE is
the check (one statement, rowcount 1 wins), and expired states are swept as new ones are issued.
"""

from __future__ import annotations

import logging
import secrets
import time

import sqlalchemy as sa
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy.engine import Engine

from bolt_app.storage import tables
from bolt_app.storage.tables import to_db_time, utc_now

# Sweep expired states on about one issue in this many, to keep the table small without a cron job.
SWEEP_EVERY = 50


class OAuthStateStore(SQLAlchemyOAuthStateStore):
    def __init__(self, expiration_seconds: int, engine: Engine, logger: logging.Logger | None = None):
        super().__init__(expiration_seconds=expiration_seconds, engine=engine,
                         logger=logger or logging.getLogger(__name__))
        # The extended table (same name), from the app's own metadata.
        self.metadata = tables.metadata
        self.oauth_states = tables.oauth_states

    def create_tables(self) -> None:  # pragma: no cover - migrations own the schema
        raise NotImplementedError("The schema is managed by Alembic: run `python main.py db upgrade`.")

    def issue(self, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
        # 256 bits from the OS CSPRNG: a state must not be guessable.
        state = secrets.token_urlsafe(32)  # pragma: no mutate - token_urlsafe(None) is these 32 bytes too
        expire_at = to_db_time(time.time() + self.expiration_seconds)
        with self.engine.begin() as conn:
            conn.execute(self.oauth_states.insert().values(state=state, expire_at=expire_at))
            if secrets.randbelow(SWEEP_EVERY) == 0:
                conn.execute(self.oauth_states.delete().where(self.oauth_states.c.expire_at <= utc_now()))
        return state

    def consume(self, state: str) -> bool:
        if not state or len(state) > 200:
            return False
        c = self.oauth_states.c
        try:
            with self.engine.begin() as conn:
                deleted = conn.execute(
                    self.oauth_states.delete().where(c.state == state, c.expire_at > utc_now())
                ).rowcount
            return deleted == 1
        except sa.exc.SQLAlchemyError as error:
            # Unknown = invalid: the callback shows "expired or already used" and stores nothing.
            self.logger.warning("OAuth state lookup failed: %s", type(error).__name__)
            return False
