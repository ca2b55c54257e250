"""The database: engine construction, transactions that lock, and schema migrations.

SQLite (embedded default), PostgreSQL (psycopg 3) and MySQL/MariaDB (PyMySQL) are supported.
Several processes and hosts may share one database; anything that must happen once
(migrations, token rotation) is serialised by the database itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.parse
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from bolt_app.telemetry import db as telemetry_db

try:
    import fcntl
except ImportError:  # Windows: no flock; msvcrt locks a byte of the file instead
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any fixed number: the key of the PostgreSQL advisory lock / MySQL named lock for migrations.
MIGRATION_LOCK_KEY = 7_301_954_112
MIGRATION_LOCK_NAME = "bolt_app_migrations"


class SchemaOutOfDate(RuntimeError):
    """The database schema is behind the code; `python main.py db upgrade` fixes it."""


def normalize_database_url(url: str) -> str:
    """Pick the drivers the project ships with when the URL names none."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("mysql://"):
        return "mysql+pymysql://" + url[len("mysql://") :]
    if url.startswith("mariadb://"):
        return "mysql+pymysql://" + url[len("mariadb://") :]
    return url


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int | None = None) -> Engine:
    """An engine tuned for the backend: pool sized to the worker threads, dead connections detected.
    `max_overflow` (default: `pool_size`) is how many more connections a burst may open."""
    max_overflow = pool_size if max_overflow is None else max_overflow
    url = normalize_database_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            # (an in-memory database keeps SQLAlchemy's one-connection pool)
            **({} if _in_memory(url) else {"poolclass": telemetry_db.CountingQueuePool}),
            pool_size=pool_size,
            max_overflow=max_overflow,
        )
        _configure_sqlite(engine)
        telemetry_db.instrument(engine)
        return engine
    connect_args: dict = {}
    if backend == "mysql":
        connect_args = {"charset": "utf8mb4", "connect_timeout": 5}
    elif backend == "postgresql":
        connect_args = {"connect_timeout": 5}
    engine = sa.create_engine(
        url,
        poolclass=telemetry_db.CountingQueuePool,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,  # a restarted or failed-over server must not break pooled connections
        pool_recycle=1800,
        pool_timeout=10,
        connect_args=connect_args,
    )
    telemetry_db.instrument(engine)
    return engine


def _in_memory(url: str) -> bool:
    database = make_url(url).database
    return not database or database == ":memory:" or "mode=memory" in url


def _configure_sqlite(engine: Engine) -> None:
    """WAL for concurrent readers, and explicit BEGINs so write transactions can take the lock up front.

    pysqlite's own transaction handling begins lazily and cannot emit BEGIN IMMEDIATE; a
    read-then-write transaction that starts deferred can fail with "database is locked" instead of
    waiting. `write_transaction()` asks for IMMEDIATE through an execution option.
    """

    path = engine.url.database
    if path and path != ":memory:" and not engine.url.query.get("uri"):
        _never_recreate(engine, os.path.abspath(path))

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA foreign_keys = ON")
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
        except Exception:  # read-only or in-memory databases keep their journal mode
            pass
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return  # each statement commits on its own: a single read needs no BEGIN/ROLLBACK
        conn.exec_driver_sql(f"BEGIN {options.get('sqlite_begin', 'DEFERRED')}")


def _never_recreate(engine: Engine, path: str) -> None:
    """Once the database file exists (when the engine is made, or since its first connection), new
    connections open it read-write without creating it.

    SQLite creates a missing file: had the file been moved or unmounted while the app runs, a new
    connection would create an empty database in its place, and the pool would keep serving
    "no such table" from that connection after the file came back. This way the connection fails
    ("unable to open database file"): requests get the database-outage answers, and the next
    connection after the file is back opens the real one. A brand-new database is still created.
    """
    uri = "file:" + urllib.parse.quote(path) + "?mode=rw"
    existed = [os.path.exists(path)]  # from then on, the file is the database

    @sa.event.listens_for(engine, "do_connect")
    def _open_existing(_dialect, _record, cargs, cparams):  # type: ignore[no-untyped-def]
        if not existed[0]:
            create_private_file(path)
        if existed[0] or os.path.exists(path):
            cargs[:] = [uri]
            cparams["uri"] = True

    @sa.event.listens_for(engine, "connect")
    def _opened(_dbapi_connection, _record):  # type: ignore[no-untyped-def]
        existed[0] = True


def check_connection(engine: Engine) -> None:
    """Before anything else touches the database: a server that cannot be reached, a database that
    does not exist, refused credentials or a SQLite folder that is missing become one
    `StartupError` naming DATABASE_URL and the fix, instead of a driver traceback."""
    from bolt_app.startup import StartupError

    url = engine.url
    if engine.dialect.name == "sqlite":
        path = url.database
        if not path or path == ":memory:" or url.query.get("uri"):
            return
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise StartupError(
                f"DATABASE_URL: the folder {folder} for the SQLite database does not exist. Create it, "
                "or point DATABASE_URL at a file in an existing folder."
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise StartupError(
                f"DATABASE_URL: this user may not write in {folder}, where the SQLite database and its "
                "lock and key files live. Give it write access, or point DATABASE_URL at a writable folder."
            )
        return
    try:
        with engine.connect():
            pass
    except sa.exc.DBAPIError as error:
        raise StartupError(_connection_problem(engine, error)) from error


def _connection_problem(engine: Engine, error: sa.exc.DBAPIError) -> str:
    url = engine.url
    mysql = engine.dialect.name == "mysql"
    server = "MySQL/MariaDB" if mysql else "PostgreSQL"
    where = f"{url.host or 'localhost'}:{url.port or (3306 if mysql else 5432)}"
    original = error.orig
    code = original.args[0] if mysql and original.args and isinstance(original.args[0], int) else None
    text = str(original)
    if code == 1049 or ('database "' in text and "does not exist" in text):
        name = url.database or ""
        create = f"CREATE DATABASE {name}" if mysql else f"createdb {name}"
        return (f"DATABASE_URL: the database {name!r} does not exist on {server} at {where}. Create it "
                f"({create}), or name an existing database in DATABASE_URL.")
    if code in (1044, 1045, 1698) or "password authentication failed" in text or (
        'role "' in text and "does not exist" in text
    ):
        return (f"DATABASE_URL: {server} at {where} refused the user name or password. Correct them in "
                "DATABASE_URL, or grant that user access.")
    if code in (2003, 2005, 2013) or "connection failed" in text or "failed to resolve host" in text:
        if "resolve" in text or "Name or service not known" in text or "nodename nor servname" in text:
            reason = "host name not found"
        elif "refused" in text:
            reason = "connection refused"
        elif "timeout" in text.lower() or "timed out" in text:
            reason = "timed out"
        else:
            reason = "no connection"
        return (f"DATABASE_URL: cannot reach {server} at {where} ({reason}). Start the database server, "
                "or correct the host and port in DATABASE_URL.")
    first = text.splitlines()[0][:160] if text else type(original).__name__
    return f"DATABASE_URL: cannot connect to {server} at {where} ({first}). Check DATABASE_URL."


def create_private_file(path: str) -> None:
    """Create a missing database file readable and writable by its owner only (0600, whatever the
    umask): it holds the installations' encrypted tokens next to the key file. SQLite gives its
    -wal and -shm files the database file's mode. An existing file is left as it is; a missing
    directory is left for SQLite to report."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except (FileExistsError, FileNotFoundError, NotADirectoryError, PermissionError):
        return
    os.close(fd)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it takes the write lock at BEGIN (IMMEDIATE)."""
    with engine.connect() as conn:
        if is_sqlite(engine):
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


def lock_rows(engine: Engine, select: sa.Select) -> sa.Select:
    """`SELECT … FOR UPDATE` where the backend has row locks (SQLite's IMMEDIATE already locks)."""
    return select if is_sqlite(engine) else select.with_for_update()


def lock_rows_to_update_values(engine: Engine, select: sa.Select) -> sa.Select:
    """Like `lock_rows`, for a transaction that updates the rows' values but neither deletes them
    nor changes their keys: `FOR NO KEY UPDATE` on PostgreSQL, which does not block the share
    locks of `share_rows` (MariaDB has no such mode: `FOR UPDATE`)."""
    return select if is_sqlite(engine) else select.with_for_update(key_share=True)


def share_rows(engine: Engine, select: sa.Select) -> sa.Select:
    """Read rows and keep them from being deleted until the transaction ends, without blocking
    other readers: `FOR KEY SHARE` on PostgreSQL, `LOCK IN SHARE MODE` on MariaDB/MySQL (SQLite's
    IMMEDIATE transaction already excludes every other writer)."""
    return select if is_sqlite(engine) else select.with_for_update(read=True, key_share=True)


# --------------------------------------------------------------------------- migrations


def _alembic_config(engine: Engine):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    config = _alembic_config(None)  # type: ignore[arg-type]
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Only one process migrates; the others wait, then find the schema current.

    Stock Bolt creates tables at import time, so several workers starting together on an empty
    database race on CREATE TABLE. Here the race is closed by a lock that the database (or, for
    SQLite, the file system) grants to one process at a time.
    """
    backend = engine.dialect.name
    if backend == "sqlite":
        database = engine.url.database
        if not database or database == ":memory:":
            yield
            return
        path = Path(database).resolve()
        with file_lock(path.with_name(path.name + ".migrate-lock")):
            yield
        return
    with engine.connect() as conn:
        if backend == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")
        else:
            conn.exec_driver_sql(f"SELECT GET_LOCK('{MIGRATION_LOCK_NAME}', 120)")
        conn.commit()
        try:
            yield
        finally:
            if backend == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")
            else:
                conn.exec_driver_sql(f"SELECT RELEASE_LOCK('{MIGRATION_LOCK_NAME}')")
            conn.commit()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes on one host, on a file that exists only while the lock
    is held or awaited: the holder deletes it before letting go, so nothing is left behind.

    A process that was waiting on the deleted file finds, once it holds that file's lock, that the
    path no longer names it; it opens the path afresh and waits there, so two processes never
    both hold the lock (one on the old file, one on a new one)."""
    while True:
        handle = open(path, "a+b")
        try:
            _lock_file(handle)
            try:
                current = os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
            except FileNotFoundError:
                current = False
        except BaseException:
            handle.close()
            raise
        if current:
            break
        handle.close()  # closing releases the lock on the stale file
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # Windows refuses to delete a file that is open elsewhere
            os.unlink(path)
        _unlock_file(handle)
        handle.close()


def _lock_file(handle) -> None:  # type: ignore[no-untyped-def]
    if fcntl is not None:
        fcntl.flock(handle, fcntl.LOCK_EX)
        return
    import msvcrt

    handle.seek(0)
    while True:
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)  # gives up after 10 s: wait on
            return
        except OSError:
            continue


def _unlock_file(handle) -> None:  # type: ignore[no-untyped-def]
    if fcntl is not None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        return
    import msvcrt

    handle.seek(0)
    msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Bring the schema to `revision`; returns (before, after). Safe to run from many processes."""
    from alembic import command

    with _migration_lock(engine):
        before = current_revision(engine)
        if before != head_revision() or revision != "head":
            command.upgrade(_alembic_config(engine), revision)
        after = current_revision(engine)
    if before != after:
        logger.info("Database schema upgraded from %s to %s", before or "empty", after)
    return before, after or ""


def ensure_schema(engine: Engine, *, auto_migrate: bool) -> None:
    """Upgrade (embedded default) or refuse to run on a schema that is behind the code."""
    if auto_migrate:
        upgrade(engine)
        return
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"The database schema is at {current or 'nothing (empty database)'} but this version of the app "
            f"needs {head}. Run `python main.py db upgrade` once against this DATABASE_URL, then start again."
        )


def ping(engine: Engine) -> bool:
    """True when the database answers a trivial query (health checks)."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return True
    except Exception as error:  # any driver error means "not healthy"
        logger.warning("Database health check failed: %s", type(error).__name__)
        return False


def sqlite_path(url: str) -> str | None:
    """The file path of a sqlite URL (None for memory or other backends)."""
    parsed = make_url(normalize_database_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return os.path.abspath(parsed.database)
