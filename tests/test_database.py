"""The database module on SQLite: a database file that goes missing is never re-created empty."""

from __future__ import annotations

import sqlalchemy as sa

from bolt_app import database
from bolt_app.storage import tables


def test_a_missing_sqlite_file_fails_connections_until_it_is_back(tmp_path) -> None:
    path = tmp_path / "app.db"
    engine = database.create_engine(f"sqlite:///{path}", pool_size=1, max_overflow=0)
    try:
        database.upgrade(engine)  # a brand-new database is created
        engine.dispose()  # only new connections from here on
        # Another process's engine, made while the file was there, that has not connected yet.
        unconnected = database.create_engine(f"sqlite:///{path}", pool_size=1)
        away = path.rename(tmp_path / "app.db.away")
        assert not database.ping(engine)  # "unable to open database file", not an empty database
        assert not database.ping(unconnected)
        assert not path.exists()
        away.rename(path)
        assert database.ping(engine) and database.ping(unconnected)
        unconnected.dispose()
        with engine.connect() as conn:  # the real database, schema and all
            assert conn.execute(sa.select(sa.func.count()).select_from(tables.bots)).scalar() == 0
    finally:
        engine.dispose()


def test_a_relative_sqlite_path_is_the_file_it_named_at_start(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    engine = database.create_engine("sqlite:///relative.db", pool_size=1)
    try:
        database.upgrade(engine)
        engine.dispose()
        assert database.ping(engine)
        assert (tmp_path / "relative.db").exists()
    finally:
        engine.dispose()
