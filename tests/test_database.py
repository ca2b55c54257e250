"""The database module on SQLite: a database file that goes missing is never re-created empty;
a new one is private to its owner."""

from __future__ import annotations

import os
import stat

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


def test_a_new_sqlite_database_and_its_side_files_are_private(tmp_path) -> None:
    path = tmp_path / "private.db"
    previous = os.umask(0o022)  # the usual umask: files would be created 0644
    try:
        engine = database.create_engine(f"sqlite:///{path}", pool_size=1)
        database.upgrade(engine)
        with engine.connect() as conn:  # held open: the -wal and -shm files exist meanwhile
            conn.execute(sa.text("SELECT 1"))
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir() if p.name.startswith("private.db")}
        engine.dispose()
    finally:
        os.umask(previous)
    assert modes == {"private.db": 0o600, "private.db-wal": 0o600, "private.db-shm": 0o600}

    # An existing file keeps the mode its owner gave it.
    shared = tmp_path / "shared.db"
    shared.touch(mode=0o640)
    shared.chmod(0o640)
    engine = database.create_engine(f"sqlite:///{shared}", pool_size=1)
    database.upgrade(engine)
    engine.dispose()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o640
