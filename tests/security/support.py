"""Helpers for the security suite: an in-process threaded server, a controllable TCP proxy,
generic row walkers over the shared metadata, and synthetic feature rows."""

from __future__ import annotations

import itertools
import socket
import threading
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any, Iterator, Optional
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bolt_app import database
from bolt_app.app import SlackApp, create_app
from slack_standin import SlackStandIn
from bolt_app.storage import schema
from bolt_app.storage.tables import utc_now, workspace_key
from bolt_app.web import create_wsgi_app
from tests.support import settings_for

SLACK_TABLES = {"slack_bots", "slack_installations", "slack_oauth_states"}


# --------------------------------------------------------------------------- in-process server


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class InProcessServer:
    """The app's WSGI callable served on 127.0.0.1 by threads of the test process.

    Cheaper than a `main.py` process for tests that need the app on three databases and direct
    access to its engine and stores.
    """

    def __init__(self) -> None:
        self.httpd = make_server("127.0.0.1", 0, lambda e, s: [], server_class=_ThreadingServer,
                                 handler_class=_QuietHandler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def serve(self, wsgi_app: Any) -> "InProcessServer":
        self.httpd.set_app(wsgi_app)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@dataclass
class LiveApp:
    url: str
    app: SlackApp
    engine: Engine
    server: InProcessServer

    @property
    def events_url(self) -> str:
        return f"{self.url}/slack/events"


def start_live_app(standin: SlackStandIn, db_url: str, **env: str) -> LiveApp:
    server = InProcessServer()
    engine = database.create_engine(db_url, pool_size=10)
    database.upgrade(engine)
    settings = settings_for(standin, db_url, SLACK_REDIRECT_URI=f"{server.url}/slack/oauth_redirect", **env)
    app = create_app(settings, engine=engine)
    server.serve(create_wsgi_app(app))
    standin.request_url = f"{server.url}/slack/events"
    return LiveApp(server.url, app, engine, server)


# --------------------------------------------------------------------------- rows


def all_tables(engine: Engine) -> list[sa.Table]:
    """Every table of the shared metadata that exists in the database, plus any other table found
    there (reflected), so a table a migration created outside the metadata is walked too."""
    existing = set(sa.inspect(engine).get_table_names())
    tables = [t for t in schema.metadata.sorted_tables if t.name in existing]
    known = {t.name for t in tables}
    extra = sa.MetaData()
    for name in sorted(existing - known - {"alembic_version"}):
        tables.append(sa.Table(name, extra, autoload_with=engine))
    return tables


def _raw_select(conn: sa.Connection, table: sa.Table) -> sa.Select:
    # Untyped columns cast to text: token columns are read as stored, never decrypted. The columns
    # are the database's own (an older schema revision may lack some of the model's).
    names = [column["name"] for column in sa.inspect(conn).get_columns(table.name)]
    raw = sa.table(table.name, *(sa.column(name) for name in names))
    return sa.select(*(sa.cast(raw.c[name], sa.Text).label(name) for name in names))


def raw_rows(engine: Engine) -> dict[str, list[dict[str, Optional[str]]]]:
    """Every row of every table, each value as the database stores it, as text."""
    out: dict[str, list[dict[str, Optional[str]]]] = {}
    with engine.connect() as conn:
        for table in all_tables(engine):
            query = _raw_select(conn, table)
            out[table.name] = [dict(row._mapping) for row in conn.execute(query)]
    return out


def row_counts(engine: Engine, *, exclude: tuple[str, ...] = ("slack_oauth_states",)) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(sa.table(t.name))).scalar_one()
            for t in all_tables(engine)
            if t.name not in exclude
        }


def rows_carrying(engine: Engine, *values: str) -> dict[str, list[dict]]:
    """Rows (any table) where some column equals one of `values` exactly (a team id, an enterprise
    id, a workspace key): generic, needs no knowledge of the feature tables."""
    wanted = {v for v in values if v}
    found: dict[str, list[dict]] = {}
    for name, rows in raw_rows(engine).items():
        hits = [row for row in rows if wanted & {v for v in row.values() if v is not None}]
        if hits:
            found[name] = hits
    return found


# --------------------------------------------------------------------------- synthetic feature rows

_counter = itertools.count(1)


def _value_for(column: sa.Column) -> Any:
    n = next(_counter)
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, sa.DateTime):
        return utc_now()
    if isinstance(kind, sa.Date):
        return utc_now().date()
    if isinstance(kind, sa.Enum):
        return kind.enums[0]
    if isinstance(kind, (sa.Integer, sa.Numeric, sa.Float)):
        return n
    if isinstance(kind, sa.LargeBinary):
        return b"x"
    if isinstance(kind, sa.JSON):
        return {}
    if isinstance(kind, sa.String):
        text = f"s{n}"
        return text[: kind.length] if kind.length else text
    raise AssertionError(
        f"No synthetic value for {column.table.name}.{column.name} ({kind!r}): extend tests/security/support.py"
    )


def seed_feature_rows(engine: Engine, enterprise_id: str | None, team_id: str | None) -> dict[str, int]:
    """One row in every feature table (non-Slack, on the shared metadata) for the workspace, parents
    first, foreign keys pointing at the rows just made. Returns rows inserted per table."""
    key = workspace_key(enterprise_id, team_id)
    made: dict[str, dict[str, Any]] = {}
    inserted: dict[str, int] = {}
    existing = set(sa.inspect(engine).get_table_names())
    with engine.begin() as conn:
        for table in schema.metadata.sorted_tables:
            if table.name in SLACK_TABLES or table.name not in existing:
                continue
            row: dict[str, Any] = {}
            for fk in table.foreign_keys:
                parent = made.get(fk.column.table.name)
                if parent is not None:
                    row[fk.parent.name] = parent[fk.column.name]
            for column in table.columns:
                if column.name in row:
                    continue
                if column.name == "workspace_key":
                    row[column.name] = key
                elif column.name == "team_id":
                    row[column.name] = team_id
                elif column.name == "enterprise_id":
                    row[column.name] = enterprise_id
                elif column.primary_key and column.autoincrement is True and isinstance(column.type, sa.Integer):
                    continue
                elif column.nullable and not column.primary_key:
                    continue
                else:
                    row[column.name] = _value_for(column)
            conn.execute(table.insert().values(**row))
            made[table.name] = row
            inserted[table.name] = 1
    return inserted


# --------------------------------------------------------------------------- a TCP proxy the test controls


class TcpProxy:
    """127.0.0.1 forwarder to a database server. `cut()` drops every open connection and refuses
    new ones (accepted, then closed at once: the client sees "server closed the connection");
    `restore()` forwards again. Standard library sockets and threads only."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._stopped = False
        self.accepted = 0
        self.refused = 0
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                self.refused += 1
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            self.accepted += 1
            pair = (client, upstream)
            with self._lock:
                self._pairs.add(pair)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b, pair), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, pair: tuple) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(pair)

    def _drop(self, pair: tuple) -> None:
        with self._lock:
            self._pairs.discard(pair)
        for s in pair:
            _close(s)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def cut(self) -> None:
        self._open.clear()
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            self._drop(pair)

    def restore(self) -> None:
        self._open.set()

    def stop(self) -> None:
        self._stopped = True
        self.cut()
        _close(self.listener)
        self._thread.join(timeout=5)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def issued_tokens(standin: SlackStandIn) -> list[str]:
    """Every token value the stand-in has issued (access and refresh), for leak scans."""
    with standin._lock:  # noqa: SLF001 - test-only look at the stand-in's records
        return list(standin._tokens)  # noqa: SLF001


def iter_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from iter_strings(v)
