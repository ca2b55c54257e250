"""A server stopped with SIGTERM (a deploy, a scale-down) posts every reply it has acknowledged."""

from __future__ import annotations

import time

from tests.support import install


def test_sigterm_after_answering_still_posts_every_reply(standin, app_server_factory, sqlite_url) -> None:
    server = app_server_factory(sqlite_url, WEB_CONCURRENCY="1")
    ws = standin.create_workspace(name="Shutdown")
    assert install(server.url, standin, ws.team_id).response.status == 200
    standin.clear_calls()
    standin.latency_seconds = 0.5  # every reply is still waiting on Slack when the signal comes
    for n in range(8):
        status, _, _ = standin.send_mention(ws, text=f"help {n}")
        assert status == 200
    assert len(standin.calls_for("chat.postMessage")) < 8
    stopping = time.monotonic()
    assert server.stop() == 0
    # Drained, not waited out: gunicorn would have killed the worker after its 20 s graceful timeout.
    assert time.monotonic() - stopping < 10
    assert len([c for c in standin.calls_for("chat.postMessage") if c.ok]) == 8, server.logs()
    assert "Traceback" not in server.logs()
