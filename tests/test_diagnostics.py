"""Query counting for benchmarks: one file per process, counting every engine counted into it."""

from __future__ import annotations

import sqlalchemy as sa

from bolt_app.diagnostics import count_queries, read_query_total

from .support import wait_for


def test_two_engines_in_one_process_add_up_in_its_file(tmp_path) -> None:
    first, second = sa.create_engine("sqlite://"), sa.create_engine("sqlite://")
    count_queries(first, str(tmp_path))
    count_queries(second, str(tmp_path))  # e.g. two threads building the same app at once
    for engine, queries in ((first, 3), (second, 4)):
        with engine.connect() as conn:
            for _ in range(queries):
                conn.exec_driver_sql("SELECT 1")
    assert wait_for(lambda: read_query_total(str(tmp_path)) == 7, timeout=5)
    assert len(list(tmp_path.glob("queries-*.json"))) == 1
