"""What a gunicorn worker does once at start-up (bolt_app/server.py)."""

from __future__ import annotations

import gc

from bolt_app import database
from bolt_app.server import build_wsgi

from .support import settings_for


def test_a_worker_moves_what_it_built_at_start_up_out_of_the_collectors_reach(standin, sqlite_url) -> None:
    database.upgrade(database.create_engine(sqlite_url, pool_size=1))
    settings = settings_for(standin, sqlite_url)
    gc.unfreeze()
    try:
        wsgi = build_wsgi(settings)
        frozen = gc.get_freeze_count()
        # The app and everything imported for it: a full collection no longer scans them.
        assert frozen > 50_000, frozen
        assert not any(obj is wsgi for obj in gc.get_objects())
    finally:
        gc.unfreeze()
