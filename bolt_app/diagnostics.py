"""Opt-in diagnostics for benchmarks: count database round-trips per process.

Enabled by QUERY_STATS_DIR; each process writes `queries-<pid>.json` there about twice a second
while counts change, so a benchmark can read totals without stopping the server.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine


# One count per stats directory for the whole process, whatever the number of engines counted
# into it: two writers of the same `queries-<pid>.json` would each overwrite the other's count.
_counts: dict[str, int] = {}
_lock = threading.Lock()


def count_queries(engine: Engine, directory: str) -> None:
    """Count `engine`'s round-trips into this process's file in `directory`."""

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _count(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        with _lock:
            _counts[directory] += 1

    with _lock:
        if directory in _counts:
            return  # this process already writes that file
        _counts[directory] = 0
    path = Path(directory) / f"queries-{os.getpid()}.json"

    def dump_loop() -> None:
        written = -1
        while True:
            threading.Event().wait(0.5)
            with _lock:
                current = _counts[directory]
            if current != written:
                # Replaced in one step: a reader never sees a half-written file.
                partial = path.with_suffix(".tmp")
                partial.write_text(json.dumps({"pid": os.getpid(), "queries": current}))
                os.replace(partial, path)
                written = current

    threading.Thread(target=dump_loop, name="query-stats", daemon=True).start()


def read_query_total(directory: str) -> int:
    return sum(json.loads(p.read_text())["queries"] for p in Path(directory).glob("queries-*.json"))
