"""Database health in metrics: errors by kind, and connections checked out of the pool.

`instrument(engine)` listens to SQLAlchemy's public events: `handle_error` (every DBAPI error on
the engine's connections, connecting included) and the pool's `checkout` / `checkin` / `detach`.
`CountingQueuePool` is SQLAlchemy's `QueuePool` whose public `connect()` also counts a pool that
had no connection to give within its timeout (no event reports that).
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool

from bolt_app.telemetry import metrics

# SQLAlchemy's DBAPIError subclasses (PEP 249's exception kinds), as label values.
_KINDS = {
    sa.exc.OperationalError: "operational",
    sa.exc.IntegrityError: "integrity",
    sa.exc.ProgrammingError: "programming",
    sa.exc.DataError: "data",
    sa.exc.InternalError: "internal",
    sa.exc.NotSupportedError: "not_supported",
    sa.exc.InterfaceError: "interface",
    sa.exc.DatabaseError: "database",
}
POOL_TIMEOUT = "pool_timeout"
DISCONNECT = "disconnect"


def error_kind(error: BaseException, *, is_disconnect: bool = False) -> str:
    if is_disconnect:
        return DISCONNECT
    for kind, name in _KINDS.items():
        if isinstance(error, kind):
            return name
    return "other"


class CountingQueuePool(QueuePool):
    def connect(self) -> Any:  # (SQLAlchemy's public Pool.connect: engines check connections out here)
        try:
            return super().connect()
        except sa.exc.TimeoutError:
            metrics.db_error(POOL_TIMEOUT)
            raise


# SQLAlchemy names a pool's logger after its class: this one's is outside the `sqlalchemy` logger,
# which SQLAlchemy keeps at WARNING unless echo_pool is asked for. Quiet like its own.
logging.getLogger(f"{CountingQueuePool.__module__}.{CountingQueuePool.__name__}").setLevel(logging.WARNING)


def instrument(engine: Engine) -> None:
    @sa.event.listens_for(engine, "handle_error")
    def _count_error(context: Any) -> None:
        error = context.sqlalchemy_exception if context.sqlalchemy_exception is not None else context.original_exception
        metrics.db_error(error_kind(error, is_disconnect=bool(context.is_disconnect)))

    @sa.event.listens_for(engine, "checkout")
    def _checked_out(*_: Any) -> None:
        metrics.pool_checked_out(1)

    @sa.event.listens_for(engine, "checkin")
    def _checked_in(*_: Any) -> None:
        metrics.pool_checked_out(-1)

    @sa.event.listens_for(engine, "detach")
    def _detached(*_: Any) -> None:  # a checked-out connection that will never be checked in
        metrics.pool_checked_out(-1)
