"""Migration 0002 creates exactly the tables the code declares, and downgrades cleanly."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bolt_app import database
from bolt_app.storage.schema import metadata

TABLES = {"polls", "poll_options", "poll_votes", "processed_deliveries"}


def _diffs(engine) -> list:
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)

    def table_of(diff) -> str | None:
        item = diff[0] if isinstance(diff, list) else diff
        for part in item[1:]:
            name = getattr(part, "name", None)
            table = getattr(part, "table", None)
            if table is not None:
                return table.name
            if isinstance(part, sa.Table):
                return name
            if isinstance(part, str) and part in TABLES:
                return part
        return None

    return [d for d in diffs if table_of(d) in TABLES]


def test_migration_matches_the_tables_and_downgrades(engine) -> None:
    assert TABLES <= set(sa.inspect(engine).get_table_names())
    assert _diffs(engine) == []
    # Every table with workspace data leads its primary key with the workspace key.
    for name in TABLES:
        assert sa.inspect(engine).get_pk_constraint(name)["constrained_columns"][0] == "workspace_key"

    command.downgrade(database._alembic_config(engine), "0001")
    assert not TABLES & set(sa.inspect(engine).get_table_names())
    database.upgrade(engine)
    assert TABLES <= set(sa.inspect(engine).get_table_names())
